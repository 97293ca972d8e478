//! Prints every SQL statement taskapi prepares (`store::all_statements`), one JSON string per
//! line. The benchmark's PostgreSQL-only ceiling (bench/bench.py) runs these very texts, so a
//! change to a statement changes its ceiling too.

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for sql in taskapi::store::all_statements() {
        writeln!(out, "{}", serde_json::Value::from(sql))?;
    }
    Ok(())
}
