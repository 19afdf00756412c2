//! Slurm's compressed host lists (`SLURM_NODELIST=gpu[01-04,7],login`), expanded the way
//! `scontrol show hostnames` does, so a worker under `srun` can compute its peers' endpoints.

/// Expands Slurm's compressed host list: `gpu[01-03,7],login` → gpu01 gpu02 gpu03 gpu7 login.
pub fn expand_nodelist(text: &str) -> Result<Vec<String>, &'static str> {
    let mut hosts = Vec::new();
    for item in split_top_level(text) {
        expand_item(item, &mut hosts)?;
    }
    if hosts.is_empty() {
        return Err("a non-empty Slurm host list");
    }
    Ok(hosts)
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn expand_item(item: &str, out: &mut Vec<String>) -> Result<(), &'static str> {
    let Some(open) = item.find('[') else {
        out.push(item.to_string());
        return Ok(());
    };
    let close = item[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or("a Slurm host list with matching brackets")?;
    let (prefix, ranges, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    for range in ranges.split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (a, b): (u64, u64) = match (lo.parse(), hi.parse()) {
            (Ok(a), Ok(b)) if a <= b && b - a < 100_000 => (a, b),
            _ => return Err("a Slurm host list with numeric ranges"),
        };
        for n in a..=b {
            expand_item(&format!("{prefix}{n:0width$}{rest}", width = lo.len()), out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_host_lists_expand() {
        assert_eq!(
            expand_nodelist("gnode[10,20-21],login").unwrap(),
            ["gnode10", "gnode20", "gnode21", "login"]
        );
        assert_eq!(expand_nodelist("n[08-10]").unwrap(), ["n08", "n09", "n10"]);
        assert!(expand_nodelist("n[1-").is_err());
    }
}
