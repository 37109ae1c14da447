//! Server-sent events: reading `event:`/`data:` blocks from a response body.
//!
//! Owns: the event grammar MCP uses: lines up to a blank line, `data:` lines joined with `\n`,
//! comments (`:`) and `id:`/`retry:`/`event:` fields skipped, one optional space after the colon.
//! Never: keeps more than `max` bytes of one event.

use std::io::{self, BufRead, Read};

/// The next event's data (`None` at the end of the stream). Events without data are skipped.
pub(crate) fn next_data(reader: &mut dyn BufRead, max: usize) -> io::Result<Option<String>> {
    let mut data: Option<String> = None;
    loop {
        let mut line = Vec::new();
        let budget = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
        let n = reader.take(budget).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(data);
        }
        if !line.ends_with(b"\n") && n as u64 >= budget {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an event line over {max} bytes"),
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if data.is_some() {
                return Ok(data);
            }
            continue;
        }
        if let Some(value) = text.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            let joined = data.get_or_insert_with(String::new);
            if !joined.is_empty() {
                joined.push('\n');
            }
            joined.push_str(value);
            if joined.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("an event over {max} bytes"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_joined() {
        let mut raw: &[u8] =
            b": keepalive\n\nevent: message\ndata: {\"a\":1}\n\ndata: x\r\ndata:y\n\nid: 3\n\n";
        assert_eq!(
            next_data(&mut raw, 100).unwrap().as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(next_data(&mut raw, 100).unwrap().as_deref(), Some("x\ny"));
        assert_eq!(next_data(&mut raw, 100).unwrap(), None);
        let mut big: &[u8] = b"data: 0123456789\n\n";
        assert!(next_data(&mut big, 5).is_err());
    }
}
