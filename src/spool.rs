//! STUB (issue 5): the on-disk spool of undelivered batches.
