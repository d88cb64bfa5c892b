//! Reading and emptying the programs' maps from userspace: one typed error for every map.

use crate::error::{Error, Result};

/// Removes every key of `map`; a key another reader removed first is fine.
pub(super) fn remove_all<K>(
    map: &'static str,
    keys: std::result::Result<Vec<K>, aya::maps::MapError>,
    mut remove: impl FnMut(&K) -> std::result::Result<(), aya::maps::MapError>,
) -> Result<()> {
    for key in keys.map_err(map_err(map))? {
        match remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(err) => return Err(map_err(map)(err)),
        }
    }
    Ok(())
}

/// A map access's error, naming the map.
pub(super) fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Error {
    move |source| Error::Map {
        map,
        source: Box::new(source),
    }
}
