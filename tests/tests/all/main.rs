//! Integration tests of tenantry, one binary with a module per topic.

mod artifacts;
