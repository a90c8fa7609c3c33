//! Shared by the executor tests: the recipient's view of three nodes'
//! answer shares, reconstructed by hand (independently of `output.rs`).

use kuvert_sql::output::ResultShares;
use kuvert_sql::Query;

pub type Row = Vec<Option<Vec<u64>>>;

/// The valid rows of the answer (in the shuffled order the nodes sent),
/// checking that every invalid row is all zeros.
pub fn answer_rows(out: &[ResultShares; 3], q: &Query) -> Vec<Row> {
    let fields = q.fields();
    let n = out[0].rows;
    let planes: Vec<Vec<u64>> = (0..out[0].planes.len())
        .map(|j| {
            (0..n)
                .map(|r| {
                    (0..3).fold(0u64, |s, i| {
                        s.wrapping_add(out[i].planes[j].components().0[r])
                    })
                })
                .collect()
        })
        .collect();
    let valid = planes.last().unwrap();
    let mut rows = Vec::new();
    for r in 0..n {
        assert!(valid[r] <= 1, "valid bit is {}", valid[r]);
        if valid[r] == 0 {
            for pl in &planes {
                assert_eq!(pl[r], 0, "an invalid row leaks a value");
            }
            continue;
        }
        let mut at = 0;
        let mut row = Vec::new();
        for f in &fields {
            let w: Vec<u64> = (0..f.ty.words()).map(|k| planes[at + k][r]).collect();
            at += f.ty.words();
            if f.nullable {
                let nl = planes[at][r];
                at += 1;
                row.push(if nl == 1 { None } else { Some(w) });
            } else {
                row.push(Some(w));
            }
        }
        rows.push(row);
    }
    rows
}
