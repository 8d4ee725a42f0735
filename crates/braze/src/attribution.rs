//! Attribution: sends joined with what followed them (being written).
