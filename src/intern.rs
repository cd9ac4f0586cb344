//! Process-wide interning of symbol and source names into small integer ids.
//!
//! Producers intern a name once (when a symbol is first seen) and then build `Copy` ticks that
//! carry only ids, so the hot path never allocates or hashes a string. Ids are dense from 0 and
//! never reused; day files keep their own id tables (see `store::writer`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::tick::{OriginId, SourceId, SymbolId};

/// A symbol or source name that cannot be interned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("empty {0} name")]
    Empty(&'static str),
    #[error("{kind} name longer than {max} bytes: {name:?}")]
    TooLong {
        kind: &'static str,
        max: usize,
        name: String,
    },
    #[error("{kind} name has a control character: {name:?}")]
    Control { kind: &'static str, name: String },
    #[error("more than {0} distinct symbols")]
    TooMany(usize),
}

/// Longest symbol or source name accepted (FIX Symbol values are far shorter).
pub const MAX_NAME_LEN: usize = 64;

/// Longest origin name (they hold a canonical path).
pub const MAX_ORIGIN_LEN: usize = 4096;

/// One namespace of interned names.
#[derive(Debug)]
struct Table {
    kind: &'static str,
    limit: usize,
    max_len: usize,
    inner: RwLock<TableInner>,
}

#[derive(Debug, Default)]
struct TableInner {
    by_name: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Table {
    fn new(kind: &'static str, limit: usize) -> Table {
        Table {
            kind,
            limit,
            max_len: MAX_NAME_LEN,
            inner: RwLock::default(),
        }
    }

    fn intern(&self, name: &str) -> Result<u32, NameError> {
        if let Some(&id) = read(&self.inner).by_name.get(name) {
            return Ok(id);
        }
        check_name(self.kind, name, self.max_len)?;
        let mut inner = write(&self.inner);
        if let Some(&id) = inner.by_name.get(name) {
            return Ok(id);
        }
        if inner.names.len() >= self.limit {
            return Err(NameError::TooMany(self.limit));
        }
        let id = inner.names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        inner.names.push(name.clone());
        inner.by_name.insert(name, id);
        Ok(id)
    }

    fn lookup(&self, name: &str) -> Option<u32> {
        read(&self.inner).by_name.get(name).copied()
    }

    fn name(&self, id: u32) -> Option<Arc<str>> {
        read(&self.inner).names.get(id as usize).cloned()
    }

    fn len(&self) -> usize {
        read(&self.inner).names.len()
    }
}

// A poisoned lock only means another thread panicked mid-insert of a complete entry; the map
// is still consistent (push and insert happen after all checks), so keep serving it.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Names are stored in files and printed in tables: reject what would corrupt either.
fn check_name(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(kind));
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            max,
            name: name.chars().take(max).collect(),
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The symbol, source and origin namespaces shared by every producer and the writer.
#[derive(Debug)]
pub struct Names {
    symbols: Table,
    sources: Table,
    /// Streams whose position is committed with their ticks (see `tick::OriginId`).
    origins: Table,
}

impl Names {
    /// `max_symbols` bounds the per-symbol ring buffers (one slot each).
    pub fn new(max_symbols: usize) -> Names {
        Names {
            symbols: Table::new("symbol", max_symbols),
            sources: Table::new("source", u16::MAX as usize),
            origins: Table {
                max_len: MAX_ORIGIN_LEN,
                ..Table::new("origin", OriginId::MAX as usize)
            },
        }
    }

    /// The id of an origin (id 0 is "none", so ids start at 1).
    pub fn origin(&self, name: &str) -> Result<OriginId, NameError> {
        self.origins.intern(name).map(|i| OriginId(i as u16 + 1))
    }

    pub fn origin_name(&self, id: OriginId) -> Option<Arc<str>> {
        id.0.checked_sub(1)
            .and_then(|i| self.origins.name(u32::from(i)))
    }

    pub fn symbol(&self, name: &str) -> Result<SymbolId, NameError> {
        self.symbols.intern(name).map(SymbolId)
    }

    pub fn source(&self, name: &str) -> Result<SourceId, NameError> {
        self.sources.intern(name).map(SourceId)
    }

    /// The id of a symbol already seen, without interning it.
    pub fn find_symbol(&self, name: &str) -> Option<SymbolId> {
        self.symbols.lookup(name).map(SymbolId)
    }

    /// The id of a source already seen, without interning it.
    pub fn find_source(&self, name: &str) -> Option<SourceId> {
        self.sources.lookup(name).map(SourceId)
    }

    pub fn symbol_name(&self, id: SymbolId) -> Option<Arc<str>> {
        self.symbols.name(id.0)
    }

    pub fn source_name(&self, id: SourceId) -> Option<Arc<str>> {
        self.sources.name(id.0)
    }

    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    pub fn max_symbols(&self) -> usize {
        self.symbols.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_gets_the_same_id_and_ids_are_dense() {
        let names = Names::new(10);
        let a = names.symbol("EURUSD").unwrap();
        let b = names.symbol("GBPUSD").unwrap();
        assert_eq!((a.0, b.0), (0, 1));
        assert_eq!(names.symbol("EURUSD").unwrap(), a);
        assert_eq!(names.symbol_name(b).as_deref(), Some("GBPUSD"));
        assert_eq!(
            names.source("LP1").unwrap().0,
            0,
            "sources are a separate namespace"
        );
    }

    #[test]
    fn names_that_would_corrupt_output_are_refused() {
        let names = Names::new(10);
        assert!(matches!(names.symbol(""), Err(NameError::Empty(_))));
        assert!(matches!(
            names.symbol("EUR\nUSD"),
            Err(NameError::Control { .. })
        ));
        assert!(matches!(
            names.symbol(&"X".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn the_symbol_limit_is_enforced() {
        let names = Names::new(2);
        names.symbol("A").unwrap();
        names.symbol("B").unwrap();
        assert_eq!(names.symbol("C"), Err(NameError::TooMany(2)));
        assert!(
            names.symbol("A").is_ok(),
            "known names still resolve at the limit"
        );
    }
}
