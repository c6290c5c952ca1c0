//! toygres-cms-sqlite (skeleton, see its issue).
