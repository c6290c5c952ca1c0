//! Identifiers: UUID newtypes for images, instances, schedules and the operations that create them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The first 8 hex digits, used in resource names that must stay short.
            pub fn short(&self) -> String {
                self.0.simple().to_string()[..8].to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// Identifies an image (a snapshot of an instance).
    ImageId,
    "ImageId"
);
uuid_id!(
    /// Identifies a PostgreSQL instance.
    InstanceId,
    "InstanceId"
);
uuid_id!(
    /// Identifies a schedule of images ([`crate::schedule::Schedule`]).
    ScheduleId,
    "ScheduleId"
);
uuid_id!(
    /// Identifies one request to create something. Reserving a record twice with the same
    /// operation id returns the same record, so a retried request does not create a duplicate.
    /// Durable workflow engines pass their own orchestration id here.
    OperationId,
    "OperationId"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_round_trip() {
        let id = ImageId::new();
        let parsed: ImageId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
        assert_eq!(id.short().len(), 8);
        assert!(format!("{id:?}").starts_with("ImageId("));
        assert!("not-a-uuid".parse::<InstanceId>().is_err());
    }
}
