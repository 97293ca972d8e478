//! Prints every SQL statement taskapi prepares (`store::all_statements`), one JSON string per
//! line. The benchmark's PostgreSQL-only ceiling (bench/bench.py) runs these very texts, so a
//! change to a statement changes its ceiling too.

#[expect(
    clippy::print_stdout,
    reason = "the benchmark reads the statements from stdout"
)]
fn main() {
    for sql in taskapi::store::all_statements() {
        println!("{}", serde_json::Value::from(sql));
    }
}
