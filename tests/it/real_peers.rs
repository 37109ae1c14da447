//! Tests against servers and clients someone else wrote.
