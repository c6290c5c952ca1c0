//! toygres-k8s (skeleton, see its issue).
