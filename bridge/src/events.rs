//! Bridge events for `xbridge monitor`. FDB changes seen on the fast path
//! (learn, move, limit) travel through one fixed-size single-producer ring
//! per worker: no lock, no allocation, and nothing at all while nobody
//! listens; a full ring counts the loss instead of waiting. Events made off
//! the fast path (age-out, config changes, control commands) go through a
//! plain queue. The control thread drains both and names ports.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::{BridgeConfig, PortId};
use crate::fdb::LearnOutcome;
use crate::reconfig::{Change, ChangeClass};
use crate::wire::MacAddr;

/// One event, as `xbridge monitor -j` prints it (one JSON object a line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new dynamic FDB entry (spec L1).
    Learn {
        mac: String,
        vlan: u16,
        port: String,
    },
    /// A dynamic entry moved to another port (spec L2).
    Move {
        mac: String,
        vlan: u16,
        from: String,
        to: String,
    },
    /// A source was not learned because a limit is reached (spec L3).
    Limit {
        mac: String,
        vlan: u16,
        port: String,
    },
    /// An entry aged out (spec L4).
    Age {
        mac: String,
        vlan: u16,
        port: String,
    },
    /// `xbridge fdb add|del|flush`.
    FdbChange {
        port: Option<String>,
        change: String,
    },
    /// A runtime edit or a reload changed the configuration.
    Config(Change),
    /// Events dropped because a monitor was slower than the bridge.
    Lost { events: u64 },
}

/// Which `xbridge monitor` filter shows an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Fdb,
    Vlan,
    Link,
}

impl Event {
    /// Whether a monitor of `topics` (empty: all) shows this event.
    pub fn shown_for(&self, topics: &[Topic]) -> bool {
        let topic = match self {
            Event::Learn { .. }
            | Event::Move { .. }
            | Event::Limit { .. }
            | Event::Age { .. }
            | Event::FdbChange { .. } => Some(Topic::Fdb),
            Event::Config(change) => match change.class {
                ChangeClass::Vlan => Some(Topic::Vlan),
                ChangeClass::Link => Some(Topic::Link),
                ChangeClass::Fdb => Some(Topic::Fdb),
                ChangeClass::Bridge => None,
            },
            Event::Lost { .. } => None,
        };
        topics.is_empty() || topic.is_none_or(|t| topics.contains(&t))
    }
}

/// What a worker records: kind, MAC, VID and ports, in two words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    Learn = 1,
    Move = 2,
    Limit = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub kind: RawKind,
    pub mac: MacAddr,
    pub vid: u16,
    pub port: PortId,
    /// The previous port of a move.
    pub from: PortId,
}

impl RawEvent {
    /// The event a learning attempt makes, if it makes one: a new entry, a
    /// move, or a source refused by a limit.
    pub fn of_learning(
        outcome: LearnOutcome,
        mac: MacAddr,
        vid: u16,
        port: PortId,
    ) -> Option<RawEvent> {
        let (kind, from) = match outcome {
            LearnOutcome::Learned => (RawKind::Learn, port),
            LearnOutcome::Moved { from } => (RawKind::Move, from),
            LearnOutcome::LimitReached => (RawKind::Limit, port),
            _ => return None,
        };
        Some(RawEvent {
            kind,
            mac,
            vid,
            port,
            from,
        })
    }

    fn encode(self) -> [u64; 2] {
        [
            (self.mac.to_u64() << 12) | u64::from(self.vid & 0x0fff),
            (self.kind as u64) | (u64::from(self.port.0) << 8) | (u64::from(self.from.0) << 24),
        ]
    }

    fn decode(words: [u64; 2]) -> Option<RawEvent> {
        let kind = match words[1] & 0xff {
            1 => RawKind::Learn,
            2 => RawKind::Move,
            3 => RawKind::Limit,
            _ => return None,
        };
        Some(RawEvent {
            kind,
            mac: MacAddr::from_u64(words[0] >> 12),
            vid: (words[0] & 0x0fff) as u16,
            port: PortId(((words[1] >> 8) & 0xffff) as u16),
            from: PortId(((words[1] >> 24) & 0xffff) as u16),
        })
    }

    fn named(self, config: &BridgeConfig) -> Event {
        let name = |port: PortId| {
            config
                .ports
                .get(port.index())
                .map_or_else(|| format!("#{}", port.0), |p| p.name.clone())
        };
        let (mac, vlan) = (self.mac.to_string(), self.vid);
        match self.kind {
            RawKind::Learn => Event::Learn {
                mac,
                vlan,
                port: name(self.port),
            },
            RawKind::Move => Event::Move {
                mac,
                vlan,
                from: name(self.from),
                to: name(self.port),
            },
            RawKind::Limit => Event::Limit {
                mac,
                vlan,
                port: name(self.port),
            },
        }
    }
}

/// Slots per worker ring.
pub const RING_SLOTS: usize = 1024;

/// A single-producer, single-consumer ring of raw events.
#[derive(Debug)]
pub struct EventRing {
    slots: Box<[[AtomicU64; 2]]>,
    /// Next slot the producer writes (only the producer stores it).
    head: AtomicUsize,
    /// Next slot the consumer reads (only the consumer stores it).
    tail: AtomicUsize,
    lost: AtomicU64,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing {
            slots: (0..RING_SLOTS)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            lost: AtomicU64::new(0),
        }
    }
}

impl EventRing {
    /// Producer side; a full ring counts the event as lost.
    pub fn push(&self, event: RawEvent) {
        let head = self.head.load(Ordering::Relaxed);
        if head.wrapping_sub(self.tail.load(Ordering::Acquire)) >= RING_SLOTS {
            self.lost
                .store(self.lost.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return;
        }
        let slot = &self.slots[head % RING_SLOTS];
        let [first, second] = event.encode();
        slot[0].store(first, Ordering::Relaxed);
        slot[1].store(second, Ordering::Relaxed);
        // Release: the slot's words are visible before the new head.
        self.head.store(head.wrapping_add(1), Ordering::Release);
    }

    /// Consumer side.
    pub fn pop(&self) -> Option<RawEvent> {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail == self.head.load(Ordering::Acquire) {
            return None;
        }
        let slot = &self.slots[tail % RING_SLOTS];
        let words = [
            slot[0].load(Ordering::Relaxed),
            slot[1].load(Ordering::Relaxed),
        ];
        // Release: the slot is read before the producer may reuse it.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        RawEvent::decode(words)
    }

    /// Events lost so far (never reset).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Where a bridge's events gather until the control thread hands them out.
#[derive(Debug)]
pub struct EventHub {
    rings: Box<[EventRing]>,
    listening: AtomicBool,
    queue: Mutex<VecDeque<Event>>,
    lost_reported: AtomicU64,
}

/// Off-fast-path events kept while nobody drains them.
const QUEUE_LIMIT: usize = 4096;

impl EventHub {
    pub fn new(workers: usize) -> EventHub {
        EventHub {
            rings: (0..workers).map(|_| EventRing::default()).collect(),
            listening: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            lost_reported: AtomicU64::new(0),
        }
    }

    /// Whether a monitor is attached; workers record nothing otherwise.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Relaxed);
    }

    pub fn ring(&self, worker: usize) -> &EventRing {
        &self.rings[worker]
    }

    /// Records an event made off the fast path.
    pub fn post(&self, event: Event) {
        if !self.listening() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() < QUEUE_LIMIT {
            queue.push_back(event);
        }
    }

    /// Everything recorded since the last call, ports named by `config`.
    pub fn drain(&self, config: &BridgeConfig) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for ring in self.rings.iter() {
            while let Some(raw) = ring.pop() {
                events.push(raw.named(config));
            }
        }
        let lost: u64 = self.rings.iter().map(EventRing::lost).sum();
        let reported = self.lost_reported.swap(lost, Ordering::Relaxed);
        if lost > reported {
            events.push(Event::Lost {
                events: lost - reported,
            });
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortConfig;

    fn raw(n: u64) -> RawEvent {
        RawEvent {
            kind: RawKind::Move,
            mac: MacAddr::from_u64(0x0200_0000_0000 + n),
            vid: 4094,
            port: PortId(63),
            from: PortId(2),
        }
    }

    #[test]
    fn only_new_moved_and_refused_sources_make_events() {
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let moved =
            RawEvent::of_learning(LearnOutcome::Moved { from: PortId(1) }, mac, 5, PortId(2));
        assert_eq!(
            moved.map(|e| (e.kind, e.from, e.port)),
            Some((RawKind::Move, PortId(1), PortId(2)))
        );
        assert_eq!(
            RawEvent::of_learning(LearnOutcome::Known, mac, 5, PortId(2)),
            None
        );
        assert_eq!(
            RawEvent::of_learning(LearnOutcome::Busy, mac, 5, PortId(2)),
            None
        );
    }

    #[test]
    fn raw_events_survive_the_ring_in_order() {
        let ring = EventRing::default();
        for n in 0..10 {
            ring.push(raw(n));
        }
        for n in 0..10 {
            assert_eq!(ring.pop(), Some(raw(n)));
        }
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn a_full_ring_counts_losses_and_keeps_the_oldest() {
        let ring = EventRing::default();
        for n in 0..(RING_SLOTS as u64 + 5) {
            ring.push(raw(n));
        }
        assert_eq!(ring.lost(), 5);
        assert_eq!(ring.pop(), Some(raw(0)));
    }

    #[test]
    fn the_ring_works_across_threads() {
        let ring = std::sync::Arc::new(EventRing::default());
        let producer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for n in 0..100_000 {
                    while ring.head.load(Ordering::Relaxed) - ring.tail.load(Ordering::Acquire)
                        >= RING_SLOTS
                    {
                        std::hint::spin_loop();
                    }
                    ring.push(raw(n));
                }
            })
        };
        let mut expected = 0;
        while expected < 100_000 {
            if let Some(event) = ring.pop() {
                assert_eq!(event, raw(expected));
                expected += 1;
            }
        }
        producer.join().unwrap();
        assert_eq!(ring.lost(), 0);
    }

    #[test]
    fn the_hub_names_ports_and_reports_losses_once() {
        let hub = EventHub::new(1);
        let config = BridgeConfig {
            name: "br".into(),
            vlan_filtering: true,
            ageing_time: std::time::Duration::ZERO,
            fdb_max_learned: 10,
            ports: vec![PortConfig::trunk("p0"), PortConfig::trunk("p1")],
            static_fdb: vec![],
        };
        hub.post(Event::Lost { events: 0 });
        assert!(hub.drain(&config).is_empty(), "nobody listens");
        hub.set_listening(true);
        hub.ring(0).push(RawEvent {
            kind: RawKind::Learn,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            vid: 10,
            port: PortId(1),
            from: PortId(0),
        });
        let events = hub.drain(&config);
        assert_eq!(
            events,
            vec![Event::Learn {
                mac: "02:00:00:00:00:01".into(),
                vlan: 10,
                port: "p1".into()
            }]
        );
        assert!(events[0].shown_for(&[Topic::Fdb]));
        assert!(!events[0].shown_for(&[Topic::Vlan]));
    }
}
