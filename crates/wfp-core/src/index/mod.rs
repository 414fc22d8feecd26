//! Per-sublayer filter index (being written): finds the next filter, in evaluation order, whose
//! conditions match the incoming values, without scanning every filter.
