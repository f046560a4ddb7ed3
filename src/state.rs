//! STUB (issue 5): the state `once` saves between runs, and the state_dir lock.
