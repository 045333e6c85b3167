//! Just enough of DNS (RFC 1035) for a sandbox's resolver: read a query's question, answer
//! with a refusal or an empty answer, and read the A records of an upstream answer.

use std::net::Ipv4Addr;

/// Record types the resolver tells apart.
pub const TYPE_A: u16 = 1;

/// A query's id, question name (lowercase, no trailing dot) and type, and where its
/// question section ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub name: String,
    pub qtype: u16,
    end: usize,
}

/// Reads the first question of `packet`, if it is a well-formed standard query.
pub fn question(packet: &[u8]) -> Option<Question> {
    if packet.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let is_query = packet[2] & 0x80 == 0 && (packet[2] >> 3) & 0x0f == 0;
    let questions = u16::from_be_bytes([packet[4], packet[5]]);
    if !is_query || questions != 1 {
        return None;
    }
    let (name, at) = read_name(packet, 12, false)?;
    let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    packet.get(at + 3)?;
    Some(Question {
        id,
        name,
        qtype,
        end: at + 4,
    })
}

/// The answer to `query` with response code `rcode` and no records: 0 (an empty answer,
/// e.g. for AAAA) or 5 (refused).
pub fn empty_answer(query: &[u8], q: &Question, rcode: u8) -> Vec<u8> {
    let mut out = query[..q.end].to_vec();
    // QR, the query's opcode and RD kept, RA set, then the code.
    out[2] = 0x80 | (query[2] & 0x79);
    out[3] = 0x80 | (rcode & 0x0f);
    out[6..12].fill(0);
    out
}

/// The A records of an upstream answer to `q`: each address and its TTL in seconds.
pub fn a_records(answer: &[u8], q: &Question) -> Vec<(Ipv4Addr, u32)> {
    let mut found = Vec::new();
    if answer.len() < 12 || answer[0..2] != q.id.to_be_bytes() || answer[3] & 0x0f != 0 {
        return found;
    }
    let questions = u16::from_be_bytes([answer[4], answer[5]]);
    let answers = u16::from_be_bytes([answer[6], answer[7]]);
    let mut at = 12;
    for _ in 0..questions {
        let Some((_, next)) = read_name(answer, at, true) else {
            return found;
        };
        at = next + 4;
    }
    for _ in 0..answers {
        let Some((_, next)) = read_name(answer, at, true) else {
            break;
        };
        let Some(fixed) = answer.get(next..next + 10) else {
            break;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let Some(data) = answer.get(next + 10..next + 10 + len) else {
            break;
        };
        if rtype == TYPE_A && len == 4 {
            found.push((Ipv4Addr::new(data[0], data[1], data[2], data[3]), ttl));
        }
        at = next + 10 + len;
    }
    found
}

/// A name at `at`: its text and where what follows it starts. Compression pointers are
/// followed only where `pointers` allows (answers; a query's question has none).
fn read_name(packet: &[u8], mut at: usize, pointers: bool) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *packet.get(at)?;
        match len {
            0 => {
                let name = labels.join(".").to_ascii_lowercase();
                return Some((name, end.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 && pointers => {
                let target = usize::from(u16::from_be_bytes([l & 0x3f, *packet.get(at + 1)?]));
                end.get_or_insert(at + 2);
                at = target;
            }
            l if l < 64 => {
                let label = packet.get(at + 1..at + 1 + usize::from(l))?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                at += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    None
}

/// A query for `name` of type `qtype` with id `id` (for tests and probes).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out
}

/// The answer to `query` giving `addresses` (A records, `ttl` seconds) for its question
/// (for tests: a fake upstream).
pub fn answer(query: &[u8], q: &Question, addresses: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut out = empty_answer(query, q, 0);
    out[6..8].copy_from_slice(&(addresses.len() as u16).to_be_bytes());
    for ip in addresses {
        // A pointer to the question's name, at offset 12.
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&[0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_back_and_an_answer_gives_its_addresses() {
        let q = query(0x1234, "API.Example.com", TYPE_A);
        let parsed = question(&q).unwrap();
        assert_eq!(parsed.name, "api.example.com");
        assert_eq!(parsed.qtype, TYPE_A);
        let ips = [
            "203.0.113.10".parse().unwrap(),
            "203.0.113.11".parse().unwrap(),
        ];
        let a = answer(&q, &parsed, &ips, 42);
        assert_eq!(a_records(&a, &parsed), vec![(ips[0], 42), (ips[1], 42)]);
    }

    #[test]
    fn a_refusal_keeps_the_id_and_question_and_has_no_records() {
        let q = query(7, "elsewhere.example", TYPE_A);
        let parsed = question(&q).unwrap();
        let r = empty_answer(&q, &parsed, 5);
        assert_eq!(&r[0..2], &[0, 7]);
        assert_eq!(r[3] & 0x0f, 5);
        assert_eq!(&r[6..12], &[0; 6]);
        assert!(a_records(&r, &parsed).is_empty());
    }

    #[test]
    fn garbage_is_not_a_question() {
        assert!(question(&[1, 2, 3]).is_none());
        let mut q = query(1, "a.b", TYPE_A);
        q[12] = 200; // a label longer than the packet
        assert!(question(&q).is_none());
        let mut answer_bit = query(1, "a.b", TYPE_A);
        answer_bit[2] |= 0x80;
        assert!(question(&answer_bit).is_none());
    }
}
