//! Aligned text table for people. Buffers up to a screenful to size its columns, then streams
//! with those widths, so a long range still prints in constant memory.

use std::io::{self, Write};

use super::{opt_text, RowWriter, COLUMNS};
use crate::tick::TickRow;

/// Rows buffered before the column widths are fixed.
const SIZING_ROWS: usize = 200;

pub struct TableWriter<W: Write> {
    out: W,
    pending: Vec<[String; 10]>,
    widths: Option<[usize; 10]>,
}

impl<W: Write> TableWriter<W> {
    pub fn new(out: W) -> TableWriter<W> {
        TableWriter {
            out,
            pending: Vec::new(),
            widths: None,
        }
    }

    fn cells(row: &TickRow) -> [String; 10] {
        [
            row.seq.map(|s| s.to_string()).unwrap_or_default(),
            row.symbol.to_string(),
            row.ts_event.0.to_string(),
            row.ts_event.to_string(),
            row.ts_recv.0.to_string(),
            opt_text(row.bid),
            opt_text(row.ask),
            opt_text(row.bid_size),
            opt_text(row.ask_size),
            row.source.to_string(),
        ]
    }

    fn line(&mut self, cells: &[String; 10]) -> io::Result<()> {
        let widths = self.widths.unwrap_or([0; 10]);
        let mut first = true;
        for (i, c) in cells.iter().enumerate() {
            // Skip the nanosecond columns in the table; they are in csv/jsonl.
            if i == 2 || i == 4 {
                continue;
            }
            if !first {
                self.out.write_all(b"  ")?;
            }
            first = false;
            if i == 9 {
                write!(self.out, "{c}")?;
            } else if i >= 5 || i == 0 {
                write!(self.out, "{c:>w$}", w = widths[i])?;
            } else {
                write!(self.out, "{c:<w$}", w = widths[i])?;
            }
        }
        self.out.write_all(b"\n")
    }

    fn fix_widths(&mut self) -> io::Result<()> {
        let mut widths = COLUMNS.map(str::len);
        for row in &self.pending {
            for (w, c) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        self.widths = Some(widths);
        let header = COLUMNS.map(str::to_owned);
        self.line(&header)?;
        for row in std::mem::take(&mut self.pending) {
            self.line(&row)?;
        }
        Ok(())
    }
}

impl<W: Write> RowWriter for TableWriter<W> {
    fn write_row(&mut self, row: &TickRow) -> io::Result<()> {
        let cells = Self::cells(row);
        if self.widths.is_some() {
            return self.line(&cells);
        }
        self.pending.push(cells);
        if self.pending.len() >= SIZING_ROWS {
            self.fix_widths()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.widths.is_none() {
            if self.pending.is_empty() {
                writeln!(self.out, "(no ticks)")?;
            } else {
                self.fix_widths()?;
            }
        }
        self.out.flush()
    }
}
