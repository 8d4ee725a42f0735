//! Writes an events file (`data generate --events`) as Braze Currents Avro files, with
//! injected noise, for `scripts/bench-currents.sh`: `currents_files EVENTS.jsonl OUT_DIR`.

use sendtime_braze::currents::synth::{CurrentsWriter, Layout};
use std::io::BufReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(events), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: currents_files EVENTS.jsonl OUT_DIR".into());
    };
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(&events)?);
    let mut writer = CurrentsWriter::new(
        std::path::Path::new(&out),
        Layout {
            block_hours: 6,
            late_every: 50,
            duplicate_every: 100,
            machine_open_every: 10,
            bot_click_every: 20,
        },
    )?;
    let mut failure = None;
    sendtime_targeting::events::for_each_event::<sendtime_targeting::events::EventsError>(
        input,
        |_, e| {
            if failure.is_none() {
                failure = writer.push(e).err();
            }
            Ok(())
        },
    )?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    let written = writer.finish()?;
    println!("{written:?}");
    Ok(())
}
