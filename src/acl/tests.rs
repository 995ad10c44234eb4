//! Unit tests of the ACL module.
