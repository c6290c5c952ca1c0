//! Image and instance lifecycles: the states and the transitions allowed between them,
//! encoded here and nowhere else. Catalogs call [`ImageState::check_transition`] /
//! [`InstanceState::check_transition`] before every compare-and-set.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every state, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The catalog's spelling of the state.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::Corrupt(format!(
                        concat!("unknown ", stringify!($name), " {:?} in the catalog"), other
                    ))),
                }
            }
        }
    };
}

/// Where an image is in its life.
///
/// ```text
/// creating ─► ready ─► deleting ─► deleted
///     └────► failed ──────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageState {
    /// Reserved; the backup job has not finished.
    Creating,
    /// Complete and verified by its checksum: can be restored.
    Ready,
    /// The backup failed; the record says why.
    Failed,
    /// Its blobs are being removed.
    Deleting,
    /// Gone: hidden from lists and lookups, kept only as a tombstone.
    Deleted,
}

string_enum!(ImageState {
    Creating => "creating",
    Ready => "ready",
    Failed => "failed",
    Deleting => "deleting",
    Deleted => "deleted",
});

impl ImageState {
    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: ImageState) -> bool {
        use ImageState::*;
        matches!(
            (self, to),
            (Creating, Ready) | (Creating, Failed) | (Ready, Deleting) | (Failed, Deleting) | (Deleting, Deleted)
        )
    }

    /// `Ok` when `self → to` is allowed, otherwise [`Error::InvalidTransition`].
    pub fn check_transition(self, to: ImageState) -> Result<(), Error> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(Error::InvalidTransition { entity: "image", from: self.to_string(), to: to.to_string() })
        }
    }
}

/// Where an instance is in its life.
///
/// ```text
/// provisioning ─► running ─► deleting ─► deleted
///       └──────► failed ───────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Being created (volume, restore job, deployment, connection test).
    Provisioning,
    /// Ready and accepting connections.
    Running,
    /// Provisioning failed; the record says why and its resources were removed.
    Failed,
    /// Its resources are being removed.
    Deleting,
    /// Gone: hidden from lookups, kept only as a tombstone.
    Deleted,
}

string_enum!(InstanceState {
    Provisioning => "provisioning",
    Running => "running",
    Failed => "failed",
    Deleting => "deleting",
    Deleted => "deleted",
});

impl InstanceState {
    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: InstanceState) -> bool {
        use InstanceState::*;
        matches!(
            (self, to),
            (Provisioning, Running)
                | (Provisioning, Failed)
                | (Running, Deleting)
                | (Failed, Deleting)
                | (Deleting, Deleted)
        )
    }

    /// `Ok` when `self → to` is allowed, otherwise [`Error::InvalidTransition`].
    pub fn check_transition(self, to: InstanceState) -> Result<(), Error> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(Error::InvalidTransition { entity: "instance", from: self.to_string(), to: to.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_transitions_follow_the_lifecycle() {
        use ImageState::*;
        let allowed: Vec<_> = ImageState::ALL
            .iter()
            .flat_map(|a| ImageState::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_transition_to(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![(Creating, Ready), (Creating, Failed), (Ready, Deleting), (Failed, Deleting), (Deleting, Deleted)]
        );
        assert!(matches!(Ready.check_transition(Creating), Err(Error::InvalidTransition { .. })));
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in ImageState::ALL {
            assert_eq!(s.as_str().parse::<ImageState>().unwrap(), *s);
        }
        for s in InstanceState::ALL {
            assert_eq!(s.as_str().parse::<InstanceState>().unwrap(), *s);
        }
        assert!("bogus".parse::<ImageState>().is_err());
    }
}
