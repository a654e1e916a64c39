//! `-k`: the kernel's log buffer, `<priority>stalld: line`.

use std::fs::OpenOptions;
use std::io::{self, Write};

use super::{Delivery, Record, Sink};

pub const PATH: &str = "/dev/kmsg";

pub struct Kmsg;

impl Kmsg {
    /// Checks that /dev/kmsg can be written.
    pub fn open() -> io::Result<Kmsg> {
        OpenOptions::new().write(true).open(PATH).map(|_| Kmsg)
    }
}

impl Sink for Kmsg {
    fn name(&self) -> &'static str {
        "kmsg"
    }

    fn takes(&self, record: &Record) -> bool {
        record.is_logged()
    }

    fn write(&self, record: &Record) -> Delivery {
        // The kernel rate-limits each open file to 10 records per 5 s: a fresh open per line
        // keeps a burst of boosts from being dropped. Writes to the ring never wait.
        let level = record.severity as u8;
        Delivery::of(
            OpenOptions::new()
                .write(true)
                .open(PATH)
                .and_then(|mut kmsg| {
                    kmsg.write_all(format!("<{level}>stalld: {}", record.message).as_bytes())
                }),
        )
    }
}
