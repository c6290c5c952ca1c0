//! toygres-local (skeleton, see its issue).
