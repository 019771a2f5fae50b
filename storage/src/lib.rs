//! weir-storage (being built).
