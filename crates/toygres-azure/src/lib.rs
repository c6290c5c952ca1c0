//! toygres-azure (skeleton, see its issue).
