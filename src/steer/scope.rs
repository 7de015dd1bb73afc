//! The scope maps of many geo services at once ([`compute_scope_maps`];
//! what a map is: [`GeoIndex`]; the passes and the shared store:
//! `geo::scope`).
//!
//! 1. **Cells.** Two location classes are in one cell when every service
//!    of the run orders its regions alike for both: the same weak order of
//!    distances to every region the services use (by dot product, and by
//!    biased angle when a service is biased), coordinates or none, and the
//!    same country and continent as far as some service's `map` has them
//!    as keys. The order of a cell is the order of any of its classes; on
//!    GeoLite2-City, 133,379 classes make about 28,000 cells over 50
//!    regions and 3,100 over 20.
//! 2. **Order ids.** Per service, the id of its order in each cell,
//!    numbered by the first class that has it: the ids (and so the bits)
//!    a service computed alone over every class would have.
//! 3. **Passes.** One pass over the table's shallow nodes per 32 services,
//!    on `threads` threads; each pass's words go into one store (its
//!    builder is sharded by word position, so threads add at once).
//!
//! Cells and the relabelled tree cost about four passes, so a run of up to
//! [`SCOPE_ALONE`] maps (a reload that changed a few services) computes each
//! map alone, the way one service would: every class's order, then a pass
//! over the whole table ([`one_service_bits`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::{FxHashMap, FxHashSet};

use super::geo::{GeoIndex, ScopeMap, geo_order_into};
use super::{MAX_REGIONS, Region, Service, Stack};
use crate::geo::scope::{LANES, MAX_STORE_SERVICES, MIXED, ScopeBits, ScopeTree, StoreBuilder};
use crate::geo::table::GeoTable;

/// Runs of at most this many maps compute each alone.
pub const SCOPE_ALONE: usize = 4;

/// Computes the scope maps of the indexes in `jobs` that have none yet,
/// each with the service it was made for, on up to `threads` threads.
/// `stop` is asked between passes; when it says true, the work ends and
/// the maps not finished stay absent (a replaced configuration).
pub fn compute_scope_maps(
    jobs: &[(&GeoIndex, &Service)],
    regions: &[Region],
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) {
    let mut seen: FxHashSet<*const GeoIndex> = FxHashSet::default();
    let mut todo: Vec<(&GeoIndex, &Service)> = jobs
        .iter()
        .copied()
        .filter(|&(ix, _)| !ix.ready() && seen.insert(ix as *const GeoIndex))
        .collect();
    // indexes over different tables (not within one configuration) go
    // table by table
    while let Some(&(first, _)) = todo.first() {
        let table = first.table.clone();
        let (same, rest): (Vec<_>, Vec<_>) = todo
            .into_iter()
            .partition(|(ix, _)| Arc::ptr_eq(&ix.table, &table));
        todo = rest;
        if same.len() <= SCOPE_ALONE {
            alone(&table, &same, regions, threads, stop);
            continue;
        }
        let cells = Cells::new(&table, &same, regions);
        let tree = ScopeTree::new(&table, &cells.cell_of);
        for chunk in same.chunks(MAX_STORE_SERVICES) {
            if stop() {
                return;
            }
            store_chunk(&table, &cells, &tree, chunk, regions, threads, stop);
        }
    }
}

/// Runs `work` on `threads` threads (on this one when `threads` is 1) and
/// returns when every one has returned.
fn on_threads(threads: usize, work: impl Fn() + Sync) {
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(&work);
            }
        });
    }
}

/// Each map of `jobs` by itself, on up to `threads` threads.
fn alone(
    table: &GeoTable,
    jobs: &[(&GeoIndex, &Service)],
    regions: &[Region],
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) {
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(&(ix, svc)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            if stop() {
                return;
            }
            let (bits, orders) = one_service_bits(table, svc, regions);
            ix.scopes.get_or_init(|| ScopeMap {
                bits: ScopeBits::Own(bits),
                orders,
            });
        }
    };
    let threads = threads.clamp(1, jobs.len().max(1));
    on_threads(threads, work);
}

/// A service's scope bitmap computed alone, and its number of distinct
/// orders: the order id of every class, then one pass over the table
/// (`GeoTable::uniform_bits`). The reference the batched maps are tested
/// against.
pub(super) fn one_service_bits(
    table: &GeoTable,
    svc: &Service,
    regions: &[Region],
) -> (Box<[u64]>, usize) {
    let mut ids = OrderIds::default();
    let mut order: Stack<u8, MAX_REGIONS> = Stack::default();
    let value: Vec<u32> = table
        .locations()
        .iter()
        .map(|loc| {
            order.clear();
            geo_order_into(svc, regions, loc.as_ref(), None, &mut order);
            ids.id(order.as_slice())
        })
        .collect();
    (table.uniform_bits(&value), ids.len())
}

/// The maps of up to [`MAX_STORE_SERVICES`] services, in one store.
fn store_chunk(
    table: &GeoTable,
    cells: &Cells,
    tree: &ScopeTree,
    chunk: &[(&GeoIndex, &Service)],
    regions: &[Region],
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) {
    let words = tree.words();
    let builder = StoreBuilder::new(chunk.len(), words);
    let counts: Vec<AtomicUsize> = chunk.iter().map(|_| AtomicUsize::new(0)).collect();
    let batches = chunk.len().div_ceil(LANES);
    let threads = threads.clamp(1, batches.max(1));
    let (next, worker, done) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let work = || {
        // each thread starts adding at its own shard
        let from = worker.fetch_add(1, Ordering::Relaxed) * builder.shards() / threads;
        let mut values = vec![[MIXED; LANES]; cells.first.len()];
        let mut out = vec![[0u64; LANES]; words];
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= batches || stop() {
                return;
            }
            let lanes = &chunk[b * LANES..chunk.len().min((b + 1) * LANES)];
            values.fill([MIXED; LANES]);
            for (l, &(_, svc)) in lanes.iter().enumerate() {
                let n = cells.values(table, svc, regions, l, &mut values);
                counts[b * LANES + l].store(n, Ordering::Relaxed);
            }
            tree.uniform_lanes(&values, |w, bits| {
                if let Some(o) = out.get_mut(w) {
                    *o = *bits;
                }
            });
            builder.add_pass(b * LANES, lanes.len(), &out, from);
            done.fetch_add(1, Ordering::Relaxed);
        }
    };
    on_threads(threads, work);
    // a stopped run leaves passes out: its maps would be wrong
    if stop() || done.into_inner() != batches {
        return;
    }
    let (store, index) = builder.finish();
    let store = Arc::new(store);
    for ((&(ix, _), index), orders) in chunk.iter().zip(index).zip(counts) {
        ix.scopes.get_or_init(|| ScopeMap {
            bits: ScopeBits::Shared {
                store: store.clone(),
                index,
            },
            orders: orders.into_inner(),
        });
    }
}

/// The cells of a run: classes every service of the run orders alike.
struct Cells {
    /// Class -> cell.
    cell_of: Vec<u32>,
    /// Cell -> its first class (cells are numbered by their first class).
    first: Vec<u32>,
    /// The run's regions (indices into the region list), sorted.
    universe: Vec<u16>,
    /// Per cell, [`Cells::width`] ranks: by dot product, then (when a
    /// service is biased) by biased angle, one per universe region (all 0
    /// for a cell without coordinates).
    ranks: Vec<u16>,
    /// Per cell, whether it has coordinates.
    coords: Vec<bool>,
    /// Per cell, its keyed (country, continent) pair, as an index into
    /// `codes`.
    code: Vec<u16>,
    /// The distinct keyed (country, continent) pairs (`[0, 0]`: not a key
    /// of any service of the run).
    codes: Vec<([u8; 2], [u8; 2])>,
    /// Whether biased ranks follow the plain ones.
    biased: bool,
}

impl Cells {
    fn new(table: &GeoTable, jobs: &[(&GeoIndex, &Service)], regions: &[Region]) -> Cells {
        let mut universe: Vec<u16> = jobs
            .iter()
            .flat_map(|(_, s)| s.regions.iter().copied())
            .collect();
        universe.sort_unstable();
        universe.dedup();
        let places: Vec<([f64; 3], f64)> = universe
            .iter()
            .map(|&ri| {
                regions
                    .get(ri as usize)
                    .map_or(([0.0; 3], 1.0), |r| (r.unit, r.reach))
            })
            .collect();
        let biased = jobs.iter().any(|(_, s)| s.biased);
        let countries: FxHashSet<[u8; 2]> = jobs
            .iter()
            .flat_map(|(_, s)| s.map.countries.keys().copied())
            .collect();
        let continents: FxHashSet<[u8; 2]> = jobs
            .iter()
            .flat_map(|(_, s)| s.map.continents.keys().copied())
            .collect();
        let code = |c: [u8; 2], keys: &FxHashSet<[u8; 2]>| -> [u8; 2] {
            if c[0] != 0 && keys.contains(&c) {
                c
            } else {
                [0, 0]
            }
        };
        let width = places.len() * if biased { 2 } else { 1 };
        let mut ids: FxHashMap<Vec<u16>, u32> = FxHashMap::default();
        let mut code_ids: FxHashMap<([u8; 2], [u8; 2]), u16> = FxHashMap::default();
        let mut cells = Cells {
            cell_of: Vec::with_capacity(table.class_count()),
            first: Vec::new(),
            universe: universe.clone(),
            ranks: Vec::new(),
            coords: Vec::new(),
            code: Vec::new(),
            codes: Vec::new(),
            biased,
        };
        let mut key: Vec<u16> = Vec::new();
        let mut by: Vec<(f64, u16)> = Vec::with_capacity(places.len());
        for (c, loc) in table.locations().iter().enumerate() {
            key.clear();
            // key: coordinates?, the keyed country and continent, ranks
            match loc {
                // no location: list order, no map entry
                None => key.extend([0, 0, 0]),
                Some(l) => {
                    let (country, continent) =
                        (code(l.country, &countries), code(l.continent, &continents));
                    key.push(u16::from(l.coords.is_some()));
                    key.push(u16::from_be_bytes(country));
                    key.push(u16::from_be_bytes(continent));
                    if l.coords.is_some() {
                        // exactly the keys geo_order_into compares
                        let u = l.unit;
                        let dots = places
                            .iter()
                            .map(|(r, _)| r[0] * u[0] + r[1] * u[1] + r[2] * u[2]);
                        by.clear();
                        by.extend(dots.clone().zip(0u16..));
                        push_ranks(&mut by, &mut key);
                        if biased {
                            by.clear();
                            by.extend(
                                dots.zip(&places)
                                    .map(|(d, (_, reach))| -(d.clamp(-1.0, 1.0).acos() * reach))
                                    .zip(0u16..),
                            );
                            push_ranks(&mut by, &mut key);
                        }
                    }
                }
            }
            let cell = match ids.get(&key[..]) {
                Some(&cell) => cell,
                None => {
                    let cell = cells.first.len() as u32;
                    ids.insert(key.clone(), cell);
                    cells.first.push(c as u32);
                    let pair = (key[1].to_be_bytes(), key[2].to_be_bytes());
                    let next = code_ids.len() as u16;
                    let ci = *code_ids.entry(pair).or_insert(next);
                    if usize::from(ci) == cells.codes.len() {
                        cells.codes.push(pair);
                    }
                    cells.code.push(ci);
                    cells.coords.push(key[0] == 1);
                    let ranks = key.get(3..).unwrap_or(&[]);
                    if ranks.len() == width {
                        cells.ranks.extend_from_slice(ranks);
                    } else {
                        cells.ranks.extend(std::iter::repeat_n(0, width));
                    }
                    cell
                }
            };
            cells.cell_of.push(cell);
        }
        cells
    }

    /// Ranks per cell.
    fn width(&self) -> usize {
        self.universe.len() * if self.biased { 2 } else { 1 }
    }

    /// Fills lane `lane` of `values` with `svc`'s order id per cell;
    /// returns how many distinct orders it has.
    fn values(
        &self,
        table: &GeoTable,
        svc: &Service,
        regions: &[Region],
        lane: usize,
        values: &mut [[u16; LANES]],
    ) -> usize {
        let mut ids = OrderIds::default();
        let quick = self.quick(svc, regions);
        let mut order: Stack<u8, MAX_REGIONS> = Stack::default();
        for (cell, (&c, v)) in self.first.iter().zip(values.iter_mut()).enumerate() {
            order.clear();
            match &quick {
                Some(q) => self.order_into(q, cell, &mut order),
                None => {
                    geo_order_into(svc, regions, table.location(c), None, &mut order);
                }
            }
            // as uniform_bits: ids past 16 bits count as mixed
            v[lane] = u16::try_from(ids.id(order.as_slice())).unwrap_or(MIXED);
        }
        ids.len()
    }

    /// What [`Cells::order_into`] needs of a service of up to 15 regions
    /// (longer ones take geo_order_into per cell).
    fn quick(&self, svc: &Service, regions: &[Region]) -> Option<Quick> {
        let n = svc.regions.len();
        let valid = svc
            .regions
            .iter()
            .all(|&ri| usize::from(ri) < regions.len())
            && svc
                .map
                .entries
                .iter()
                .all(|(_, ps)| ps.iter().all(|&p| usize::from(p) < n));
        if n > 15 || !valid {
            return None;
        }
        let offset = if svc.biased { self.universe.len() } else { 0 };
        let mut rank_at = [0usize; 15];
        for (p, ri) in svc.regions.iter().enumerate() {
            rank_at[p] = offset + self.universe.binary_search(ri).ok()?;
        }
        // each keyed (country, continent) pair's map entry, as matching()
        // finds it: country first, then continent
        let entries = self
            .codes
            .iter()
            .map(|&(country, continent)| {
                let e = (country[0] != 0 && !svc.map.countries.is_empty())
                    .then(|| svc.map.countries.get(&country))
                    .flatten()
                    .or_else(|| {
                        (continent[0] != 0 && !svc.map.continents.is_empty())
                            .then(|| svc.map.continents.get(&continent))
                            .flatten()
                    });
                let mut first = Stack::default();
                let mut taken = 0u16;
                if let Some((_, ps)) = e.and_then(|&e| svc.map.entries.get(usize::from(e))) {
                    for &p in ps.iter() {
                        if taken & (1 << p) == 0 {
                            taken |= 1 << p;
                            first.push(p);
                        }
                    }
                }
                (first, taken)
            })
            .collect();
        Some(Quick {
            n,
            rank_at,
            entries,
        })
    }

    /// A cell's order for a service of up to 15 regions, from the ranks:
    /// the map entry's regions first, then the rest by rank, ties in list
    /// order (what geo_order_into gives, without distances).
    fn order_into(&self, q: &Quick, cell: usize, out: &mut Stack<u8, MAX_REGIONS>) {
        let (first, taken) = q.entries[usize::from(self.code[cell])];
        for &p in first.as_slice() {
            out.push(p);
        }
        let ranks = &self.ranks[cell * self.width()..];
        let coords = self.coords[cell];
        // (rank, position), sorted: by rank, then list order
        let mut rest = [0u32; 15];
        let mut len = 0;
        for p in 0..q.n {
            if taken & (1 << p) != 0 {
                continue;
            }
            let rank = if coords {
                u32::from(ranks[q.rank_at[p]])
            } else {
                0
            };
            let key = (rank << 8) | p as u32;
            let mut i = len;
            while i > 0 && rest[i - 1] > key {
                rest[i] = rest[i - 1];
                i -= 1;
            }
            rest[i] = key;
            len += 1;
        }
        for &k in &rest[..len] {
            out.push((k & 0xff) as u8);
        }
    }
}

/// A service's view of the cells, for [`Cells::order_into`].
struct Quick {
    /// Regions.
    n: usize,
    /// Per position, where its rank is in a cell's ranks.
    rank_at: [usize; 15],
    /// Per keyed (country, continent) pair: the map entry's positions
    /// (deduplicated, in listed order) and their mask.
    entries: Vec<(Stack<u8, 15>, u16)>,
}

/// Appends the weak-order rank of each item (by value, largest first;
/// equal values share a rank) in item order.
fn push_ranks(by: &mut [(f64, u16)], key: &mut Vec<u16>) {
    by.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let at = key.len();
    key.resize(at + by.len(), 0);
    let mut rank = 0u16;
    for j in 0..by.len() {
        // `!=`, not total_cmp: -0.0 and 0.0 tie, as they do in the order
        if j > 0 && by[j].0 != by[j - 1].0 {
            rank += 1;
        }
        key[at + by[j].1 as usize] = rank;
    }
}

/// Dense ids of region orders, in the order first seen.
#[derive(Default)]
struct OrderIds {
    /// Orders of up to 15 positions, four bits each and the length, in
    /// an open-addressing table (`EMPTY`: a free slot; no order packs to
    /// it, its positions would repeat).
    keys: Vec<u64>,
    ids: Vec<u32>,
    packed: usize,
    /// Longer orders.
    long: FxHashMap<Vec<u8>, u32>,
}

const EMPTY: u64 = u64::MAX;

impl OrderIds {
    fn id(&mut self, order: &[u8]) -> u32 {
        let next = self.len() as u32;
        if order.len() > 15 || order.iter().any(|&p| p >= 16) {
            return match self.long.get(order) {
                Some(&id) => id,
                None => {
                    self.long.insert(order.to_vec(), next);
                    next
                }
            };
        }
        let key =
            order.iter().fold(0u64, |k, &p| (k << 4) | u64::from(p)) | (order.len() as u64) << 60;
        if (self.packed + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut s = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask;
        loop {
            match self.keys[s] {
                EMPTY => {
                    self.keys[s] = key;
                    self.ids[s] = next;
                    self.packed += 1;
                    return next;
                }
                k if k == key => return self.ids[s],
                _ => s = (s + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let cap = (self.keys.len() * 2).max(64);
        let old = std::mem::replace(&mut self.keys, vec![EMPTY; cap]);
        let ids = std::mem::replace(&mut self.ids, vec![0; cap]);
        for (k, id) in old.into_iter().zip(ids) {
            if k != EMPTY {
                let mut s = (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (cap - 1);
                while self.keys[s] != EMPTY {
                    s = (s + 1) & (cap - 1);
                }
                self.keys[s] = k;
                self.ids[s] = id;
            }
        }
    }

    fn len(&self) -> usize {
        self.packed + self.long.len()
    }
}
