//! weir-engine (being built).
