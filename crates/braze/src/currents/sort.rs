//! Time order in bounded memory: kept events are buffered as compact records (time, tie
//! rank, id hash, the JSON line), sorted and spilled to temporary run files when the buffer
//! is full, then merged. Duplicates (the same Currents `id`, delivered more than once) meet
//! in the merge: a redelivered event has the same time, type and id, so it sorts next to its
//! first copy and is dropped there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// How records compare: time, then [`super::kinds::tie_rank`], then id hash.
pub type SortKey = (i64, u8, u64);

/// One buffered event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// Its sort key.
    pub key: SortKey,
    /// The JSON line, without its newline.
    pub line: Vec<u8>,
}

/// Bytes a record costs in the buffer beyond its line (key, vector header, slack).
const RECORD_OVERHEAD: usize = 48;

/// The buffer and its spilled runs.
#[derive(Debug)]
pub struct ExternalSort {
    buffer: Vec<Record>,
    buffered_bytes: usize,
    budget: usize,
    runs: Vec<File>,
    peak_bytes: usize,
}

impl ExternalSort {
    /// Sorts with at most about `budget` bytes of records in memory.
    pub fn new(budget: usize) -> Self {
        Self {
            buffer: Vec::new(),
            buffered_bytes: 0,
            budget: budget.max(1 << 16),
            runs: Vec::new(),
            peak_bytes: 0,
        }
    }

    /// Adds a record, spilling a sorted run when the buffer is full.
    pub fn push(&mut self, record: Record) -> io::Result<()> {
        self.buffered_bytes += record.line.len() + RECORD_OVERHEAD;
        self.buffer.push(record);
        self.peak_bytes = self.peak_bytes.max(self.buffered_bytes);
        if self.buffered_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Runs spilled so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The most bytes the buffer held.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let mut file = BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
        for r in self.buffer.drain(..) {
            write_record(&mut file, &r)?;
        }
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.runs.push(file);
        self.buffered_bytes = 0;
        self.buffer.shrink_to(self.buffer.capacity() / 2);
        Ok(())
    }

    /// Hands every record to `each` in key order, records with equal keys once; returns how
    /// many repeats were left out.
    pub fn finish(mut self, mut each: impl FnMut(&Record) -> io::Result<()>) -> io::Result<u64> {
        self.buffer.sort_unstable();
        let mut sources: Vec<Source> = Vec::with_capacity(self.runs.len() + 1);
        for file in self.runs.drain(..) {
            sources.push(Source::Run(BufReader::with_capacity(1 << 18, file)));
        }
        sources.push(Source::Memory(std::mem::take(&mut self.buffer).into_iter()));
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(r) = s.next()? {
                heap.push(Reverse((r, i)));
            }
        }
        let mut last: Option<SortKey> = None;
        let mut repeats = 0u64;
        while let Some(Reverse((record, i))) = heap.pop() {
            if last == Some(record.key) {
                repeats += 1;
            } else {
                each(&record)?;
                last = Some(record.key);
            }
            if let Some(next) = sources[i].next()? {
                heap.push(Reverse((next, i)));
            }
        }
        Ok(repeats)
    }
}

enum Source {
    Run(BufReader<File>),
    Memory(std::vec::IntoIter<Record>),
}

impl Source {
    fn next(&mut self) -> io::Result<Option<Record>> {
        match self {
            Source::Memory(it) => Ok(it.next()),
            Source::Run(file) => read_record(file),
        }
    }
}

fn write_record(out: &mut impl Write, r: &Record) -> io::Result<()> {
    out.write_all(&r.key.0.to_le_bytes())?;
    out.write_all(&[r.key.1])?;
    out.write_all(&r.key.2.to_le_bytes())?;
    let len = u32::try_from(r.line.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "an event line over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&r.line)
}

fn read_record(input: &mut impl Read) -> io::Result<Option<Record>> {
    let mut head = [0u8; 21];
    match input.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    input.read_exact(&mut head[1..])?;
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&head[0..8]);
    let at = i64::from_le_bytes(eight);
    let rank = head[8];
    eight.copy_from_slice(&head[9..17]);
    let id = u64::from_le_bytes(eight);
    let mut four = [0u8; 4];
    four.copy_from_slice(&head[17..21]);
    let mut line = vec![0u8; u32::from_le_bytes(four) as usize];
    input.read_exact(&mut line)?;
    Ok(Some(Record {
        key: (at, rank, id),
        line,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_out_in_key_order_across_spilled_runs_with_repeats_dropped() {
        // GIVEN a budget small enough to spill several runs, and every key pushed twice
        let mut sort = ExternalSort::new(0);
        let keys: Vec<SortKey> = (0..5_000)
            .map(|i| ((i * 7919) % 1000, (i % 3) as u8, i as u64 % 50))
            .collect();
        for k in keys.iter().chain(keys.iter()) {
            sort.push(Record {
                key: *k,
                line: format!("{k:?}").into_bytes(),
            })
            .unwrap();
        }
        assert!(sort.runs() > 1);
        // WHEN merged
        let mut out = Vec::new();
        let repeats = sort
            .finish(|r| {
                out.push(r.key);
                Ok(())
            })
            .unwrap();
        // THEN each distinct key comes once, in order
        let mut expected = keys.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(out, expected);
        assert_eq!(repeats, 10_000 - expected.len() as u64);
    }
}
