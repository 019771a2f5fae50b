//! weir-inputs (being built).
