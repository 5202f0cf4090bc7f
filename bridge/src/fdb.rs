//! The forwarding database shared by all workers: an open-addressing table of
//! atomic key/value words. Lookups never lock or write; learning claims slots
//! with compare-and-swap; ageing and flushes run off the fast path. Time is
//! passed in (spec L1-L4), so the table is tested without clocks.
//!
//! Slot protocol (why it is safe without locks):
//! - a key goes EMPTY -> K (claim by CAS) or TOMBSTONE -> K (reuse by CAS);
//!   only the claimer then stores the value, which is zero at that point;
//! - every later value change is a CAS from the value last read, so a refresh
//!   that races with a removal fails instead of resurrecting the entry;
//! - removal is value -> 0 (CAS), then key -> TOMBSTONE;
//! - a reader takes key, value, key again, and trusts the value only if the
//!   key did not change and the value is marked valid.
//!
//! Two workers learning the same new address at the same instant may both
//! claim a slot; lookups see the first in probe order and the other ages out.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{PortId, MAX_PORTS};
use crate::wire::MacAddr;

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = u64::MAX;
const VALID: u64 = 1 << 63;
const STATIC: u64 = 1 << 62;
const PORT_SHIFT: u32 = 40;
const TIME_MASK: u64 = (1 << PORT_SHIFT) - 1;
/// How far a key may sit from its home slot.
const MAX_PROBE: usize = 64;
/// A refresh writes the timestamp only when it is at least this stale, so a
/// busy flow does not bounce the entry's cache line between cores.
const REFRESH_GRANULARITY_MS: u64 = 1000;

/// Milliseconds on a monotonic clock the caller owns.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub fn saturating_since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// One FDB entry as read out of the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FdbEntry {
    pub mac: MacAddr,
    /// 0 in the shared VLAN of a bridge without VLAN filtering (spec I7).
    pub vid: u16,
    pub port: PortId,
    pub is_static: bool,
    pub last_seen: Millis,
}

/// What a learning attempt did (spec L1-L3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LearnOutcome {
    /// Already known on this port.
    Known,
    Learned,
    Moved {
        from: PortId,
    },
    /// The address is static on another port: the frame must be dropped (L2).
    StaticConflict {
        owner: PortId,
    },
    /// A bridge or port limit is reached; nothing learned (L3).
    LimitReached,
    /// Another worker is inserting or removing this entry right now.
    Busy,
}

/// Why a static entry could not be added.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FdbError {
    #[error("the FDB has no free slot near {mac} vlan {vid}")]
    Full { mac: MacAddr, vid: u16 },
}

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    value: AtomicU64,
}

/// The shared forwarding database.
#[derive(Debug)]
pub struct Fdb {
    slots: Box<[Slot]>,
    mask: usize,
    max_learned: u32,
    learned: AtomicU32,
    learned_per_port: [AtomicU32; MAX_PORTS],
    moves: AtomicU64,
    limit_hits: AtomicU64,
}

fn encode_key(mac: MacAddr, vid: u16) -> u64 {
    (mac.to_u64() << 12) | u64::from(vid & 0x0fff)
}

fn decode_key(key: u64) -> (MacAddr, u16) {
    (MacAddr::from_u64(key >> 12), (key & 0x0fff) as u16)
}

fn encode_value(port: PortId, is_static: bool, now: Millis) -> u64 {
    VALID
        | if is_static { STATIC } else { 0 }
        | (u64::from(port.0) << PORT_SHIFT)
        | (now.0 & TIME_MASK)
}

fn value_port(value: u64) -> PortId {
    PortId(((value >> PORT_SHIFT) & 0xffff) as u16)
}

fn value_time(value: u64) -> Millis {
    Millis(value & TIME_MASK)
}

impl Fdb {
    /// A table for `max_learned` dynamic entries plus static ones.
    pub fn new(max_learned: u32) -> Fdb {
        let wanted = (max_learned as usize).saturating_mul(2).max(1024);
        let capacity = wanted.next_power_of_two();
        Fdb {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            mask: capacity - 1,
            max_learned,
            learned: AtomicU32::new(0),
            learned_per_port: std::array::from_fn(|_| AtomicU32::new(0)),
            moves: AtomicU64::new(0),
            limit_hits: AtomicU64::new(0),
        }
    }

    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    fn probe(&self, key: u64) -> impl Iterator<Item = &Slot> {
        let home = self.home(key);
        (0..MAX_PROBE.min(self.slots.len())).map(move |step| &self.slots[(home + step) & self.mask])
    }

    /// The slot holding `key` and its valid value, read consistently.
    fn find(&self, key: u64) -> Option<(&Slot, u64)> {
        for slot in self.probe(key) {
            let seen = slot.key.load(Ordering::Acquire);
            if seen == EMPTY {
                return None;
            }
            if seen != key {
                continue;
            }
            let value = slot.value.load(Ordering::Acquire);
            if value & VALID != 0 && slot.key.load(Ordering::Acquire) == key {
                return Some((slot, value));
            }
        }
        None
    }

    /// The port `mac` was last seen on in VLAN `vid` (spec F1).
    pub fn lookup(&self, mac: MacAddr, vid: u16) -> Option<PortId> {
        self.find(encode_key(mac, vid))
            .map(|(_, value)| value_port(value))
    }

    pub fn get(&self, mac: MacAddr, vid: u16) -> Option<FdbEntry> {
        self.find(encode_key(mac, vid)).map(|(_, value)| FdbEntry {
            mac,
            vid,
            port: value_port(value),
            is_static: value & STATIC != 0,
            last_seen: value_time(value),
        })
    }

    /// Learns or refreshes `mac` in `vid` on `port` (spec L1-L3).
    /// `port_cap` is the port's `fdb_max_learned` (0: none).
    pub fn learn(
        &self,
        mac: MacAddr,
        vid: u16,
        port: PortId,
        now: Millis,
        port_cap: u32,
    ) -> LearnOutcome {
        let key = encode_key(mac, vid);
        if let Some((slot, value)) = self.find(key) {
            let owner = value_port(value);
            if value & STATIC != 0 {
                return if owner == port {
                    LearnOutcome::Known
                } else {
                    LearnOutcome::StaticConflict { owner }
                };
            }
            if owner == port {
                if now.0.saturating_sub(value_time(value).0) >= REFRESH_GRANULARITY_MS {
                    // A failed CAS means a removal or another refresh won: fine either way.
                    let _ = slot.value.compare_exchange(
                        value,
                        encode_value(port, false, now),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                return LearnOutcome::Known;
            }
            return match slot.value.compare_exchange(
                value,
                encode_value(port, false, now),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.learned_per_port[owner.index()].fetch_sub(1, Ordering::Relaxed);
                    self.learned_per_port[port.index()].fetch_add(1, Ordering::Relaxed);
                    self.moves.fetch_add(1, Ordering::Relaxed);
                    LearnOutcome::Moved { from: owner }
                }
                Err(_) => LearnOutcome::Busy,
            };
        }
        if self.learned.load(Ordering::Relaxed) >= self.max_learned
            || (port_cap != 0
                && self.learned_per_port[port.index()].load(Ordering::Relaxed) >= port_cap)
        {
            self.limit_hits.fetch_add(1, Ordering::Relaxed);
            return LearnOutcome::LimitReached;
        }
        match self.insert(key, encode_value(port, false, now)) {
            Ok(true) => {
                self.learned.fetch_add(1, Ordering::Relaxed);
                self.learned_per_port[port.index()].fetch_add(1, Ordering::Relaxed);
                LearnOutcome::Learned
            }
            Ok(false) => LearnOutcome::Busy,
            Err(_) => {
                self.limit_hits.fetch_add(1, Ordering::Relaxed);
                LearnOutcome::LimitReached
            }
        }
    }

    /// Claims a slot for `key` and stores `value`. `Ok(false)`: the key
    /// appeared meanwhile (another writer), nothing stored.
    fn insert(&self, key: u64, value: u64) -> Result<bool, ()> {
        for slot in self.probe(key) {
            let mut seen = slot.key.load(Ordering::Acquire);
            if seen == key {
                return Ok(false);
            }
            if seen == EMPTY || seen == TOMBSTONE {
                match slot
                    .key
                    .compare_exchange(seen, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        slot.value.store(value, Ordering::Release);
                        return Ok(true);
                    }
                    Err(now_there) => seen = now_there,
                }
                if seen == key {
                    return Ok(false);
                }
            }
        }
        Err(())
    }

    /// Adds or replaces a static entry (spec L2).
    pub fn add_static(&self, mac: MacAddr, vid: u16, port: PortId) -> Result<(), FdbError> {
        let key = encode_key(mac, vid);
        let value = encode_value(port, true, Millis(0));
        if let Some((slot, old)) = self.find(key) {
            if old & STATIC == 0 {
                self.forget_dynamic(value_port(old));
            }
            slot.value.store(value, Ordering::Release);
            return Ok(());
        }
        match self.insert(key, value) {
            Ok(_) => Ok(()),
            Err(()) => Err(FdbError::Full { mac, vid }),
        }
    }

    fn forget_dynamic(&self, port: PortId) {
        self.learned.fetch_sub(1, Ordering::Relaxed);
        self.learned_per_port[port.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// Removes the entry in `slot` if it still holds `value`.
    fn remove_slot(&self, slot: &Slot, key: u64, value: u64) -> bool {
        if slot
            .value
            .compare_exchange(value, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let _ = slot
            .key
            .compare_exchange(key, TOMBSTONE, Ordering::AcqRel, Ordering::Relaxed);
        if value & STATIC == 0 {
            self.forget_dynamic(value_port(value));
        }
        true
    }

    /// A separate table with the same entries, for what-if questions
    /// (`xbridge trace`) that must not learn into the real one.
    pub fn scratch_copy(&self) -> Fdb {
        let copy = Fdb::new(self.max_learned);
        for entry in self.entries() {
            if entry.is_static {
                let _ = copy.add_static(entry.mac, entry.vid, entry.port);
            } else {
                copy.learn(entry.mac, entry.vid, entry.port, entry.last_seen, 0);
            }
        }
        copy
    }

    /// Removes entries that match `keep == false`, calling `removed` for each.
    pub fn retain(
        &self,
        mut keep: impl FnMut(&FdbEntry) -> bool,
        mut removed: impl FnMut(FdbEntry),
    ) {
        for slot in self.slots.iter() {
            let key = slot.key.load(Ordering::Acquire);
            if key == EMPTY || key == TOMBSTONE {
                continue;
            }
            let value = slot.value.load(Ordering::Acquire);
            if value & VALID == 0 {
                continue;
            }
            let (mac, vid) = decode_key(key);
            let entry = FdbEntry {
                mac,
                vid,
                port: value_port(value),
                is_static: value & STATIC != 0,
                last_seen: value_time(value),
            };
            if !keep(&entry) && self.remove_slot(slot, key, value) {
                removed(entry);
            }
        }
    }

    /// Drops dynamic entries not refreshed for `ageing_time` (spec L4; zero
    /// disables ageing). Returns how many went.
    pub fn age(&self, now: Millis, ageing_time: Duration, mut aged: impl FnMut(FdbEntry)) -> usize {
        if ageing_time.is_zero() {
            return 0;
        }
        let mut count = 0;
        self.retain(
            |entry| entry.is_static || now.saturating_since(entry.last_seen) < ageing_time,
            |entry| {
                count += 1;
                aged(entry)
            },
        );
        count
    }

    /// Removes one entry; true if it was there.
    pub fn remove(&self, mac: MacAddr, vid: u16) -> bool {
        let key = encode_key(mac, vid);
        match self.find(key) {
            Some((slot, value)) => self.remove_slot(slot, key, value),
            None => false,
        }
    }

    /// Every valid entry, for `fdb show`.
    pub fn entries(&self) -> Vec<FdbEntry> {
        let mut out = Vec::new();
        self.retain(
            |entry| {
                out.push(*entry);
                true
            },
            |_| {},
        );
        out.sort_by_key(|entry| (entry.vid, entry.mac));
        out
    }

    /// How many entries (static and dynamic) the table holds: one pass,
    /// nothing collected or sorted (stats read it five times a second).
    pub fn len(&self) -> usize {
        let mut count = 0;
        self.retain(
            |_| {
                count += 1;
                true
            },
            |_| {},
        );
        count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn learned_count(&self) -> u32 {
        self.learned.load(Ordering::Relaxed)
    }

    pub fn learned_on(&self, port: PortId) -> u32 {
        self.learned_per_port[port.index()].load(Ordering::Relaxed)
    }

    /// Dynamic entries that moved between ports (counter `fdb_moves`).
    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    /// Learning attempts refused by a limit (counter `learn_limit`).
    pub fn limit_hits(&self) -> u64 {
        self.limit_hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    // spec: L1
    #[test]
    fn l1_learns_per_vlan() {
        let fdb = Fdb::new(16);
        assert_eq!(
            fdb.learn(mac(1), 10, PortId(0), Millis(0), 0),
            LearnOutcome::Learned
        );
        assert_eq!(fdb.lookup(mac(1), 10), Some(PortId(0)));
        assert_eq!(fdb.lookup(mac(1), 20), None);
        assert_eq!(
            fdb.learn(mac(1), 10, PortId(0), Millis(5), 0),
            LearnOutcome::Known
        );
        assert_eq!(fdb.learned_count(), 1);
    }

    // spec: L2
    #[test]
    fn l2_dynamic_entries_move_static_ones_do_not() {
        let fdb = Fdb::new(16);
        fdb.learn(mac(1), 10, PortId(0), Millis(0), 0);
        assert_eq!(
            fdb.learn(mac(1), 10, PortId(3), Millis(1), 0),
            LearnOutcome::Moved { from: PortId(0) }
        );
        assert_eq!(fdb.lookup(mac(1), 10), Some(PortId(3)));
        assert_eq!(fdb.moves(), 1);
        assert_eq!(
            (fdb.learned_on(PortId(0)), fdb.learned_on(PortId(3))),
            (0, 1)
        );

        fdb.add_static(mac(2), 10, PortId(1)).unwrap();
        assert_eq!(
            fdb.learn(mac(2), 10, PortId(2), Millis(1), 0),
            LearnOutcome::StaticConflict { owner: PortId(1) }
        );
        assert_eq!(fdb.lookup(mac(2), 10), Some(PortId(1)));
        assert_eq!(
            fdb.age(Millis(u64::from(u32::MAX)), Duration::from_secs(1), |_| {}),
            1
        );
        assert_eq!(
            fdb.lookup(mac(2), 10),
            Some(PortId(1)),
            "static entries never age"
        );
    }

    // spec: L3
    #[test]
    fn l3_bridge_and_port_limits_stop_learning() {
        let fdb = Fdb::new(2);
        assert_eq!(
            fdb.learn(mac(1), 1, PortId(0), Millis(0), 1),
            LearnOutcome::Learned
        );
        assert_eq!(
            fdb.learn(mac(2), 1, PortId(0), Millis(0), 1),
            LearnOutcome::LimitReached
        );
        assert_eq!(
            fdb.learn(mac(2), 1, PortId(1), Millis(0), 0),
            LearnOutcome::Learned
        );
        assert_eq!(
            fdb.learn(mac(3), 1, PortId(2), Millis(0), 0),
            LearnOutcome::LimitReached
        );
        assert_eq!(fdb.limit_hits(), 2);
        assert_eq!(fdb.lookup(mac(3), 1), None);
    }

    // spec: L4
    #[test]
    fn l4_entries_age_unless_refreshed_or_ageing_is_off() {
        let fdb = Fdb::new(16);
        let ageing = Duration::from_secs(300);
        fdb.learn(mac(1), 1, PortId(0), Millis(0), 0);
        fdb.learn(mac(2), 1, PortId(0), Millis(0), 0);
        fdb.learn(mac(2), 1, PortId(0), Millis(200_000), 0);
        assert_eq!(fdb.age(Millis(299_999), ageing, |_| {}), 0);
        assert_eq!(fdb.age(Millis(0), Duration::ZERO, |_| {}), 0);
        assert_eq!(
            fdb.age(Millis(u64::MAX >> 30), Duration::ZERO, |_| {}),
            0,
            "ageing_time 0"
        );
        let mut gone = Vec::new();
        fdb.age(Millis(300_000), ageing, |entry| gone.push(entry.mac));
        assert_eq!(gone, vec![mac(1)]);
        assert_eq!(fdb.lookup(mac(1), 1), None);
        assert_eq!(fdb.lookup(mac(2), 1), Some(PortId(0)));
        assert_eq!(fdb.learned_count(), 1);
    }

    #[test]
    fn removed_slots_are_reused_and_lookups_probe_past_them() {
        let fdb = Fdb::new(0);
        // max_learned 0: statics only.
        for last in 0..200u8 {
            fdb.add_static(mac(last), 1, PortId(1)).unwrap();
        }
        for last in (0..200u8).step_by(2) {
            assert!(fdb.remove(mac(last), 1));
        }
        for last in 0..200u8 {
            assert_eq!(fdb.lookup(mac(last), 1).is_some(), last % 2 == 1, "{last}");
        }
        for last in (0..200u8).step_by(2) {
            fdb.add_static(mac(last), 1, PortId(2)).unwrap();
        }
        assert_eq!(fdb.entries().len(), 200);
        assert_eq!(fdb.len(), 200);
    }

    #[test]
    fn concurrent_learners_and_an_ager_keep_the_table_consistent() {
        let fdb = Fdb::new(100_000);
        std::thread::scope(|scope| {
            for worker in 0..2u16 {
                let fdb = &fdb;
                scope.spawn(move || {
                    for round in 0..20u64 {
                        for n in 0..2000u32 {
                            let [_, b, c, d] = n.to_be_bytes();
                            let mac = MacAddr([2, worker as u8, b, c, d, 1]);
                            fdb.learn(mac, 1, PortId(worker), Millis(round * 1000), 0);
                            // The ager may have removed it already; if present it is ours.
                            let seen = fdb.lookup(mac, 1);
                            assert!(seen.is_none() || seen == Some(PortId(worker)), "{seen:?}");
                        }
                    }
                });
            }
            let fdb = &fdb;
            scope.spawn(move || {
                for round in 0..50 {
                    fdb.age(Millis(round * 400), Duration::from_secs(5), |_| {});
                }
            });
        });
        let entries = fdb.entries();
        assert_eq!(entries.len() as u32, fdb.learned_count());
        for entry in entries {
            assert_eq!(u16::from(entry.mac.0[1]), entry.port.0);
        }
    }
}
