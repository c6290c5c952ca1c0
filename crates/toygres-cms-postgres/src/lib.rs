//! toygres-cms-postgres (skeleton, see its issue).
