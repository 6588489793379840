//! CPU reference for every op (being written).
