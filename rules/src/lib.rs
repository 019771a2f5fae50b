//! weir-rules (being built).
