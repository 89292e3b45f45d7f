//! TODO: to be filled in.
