use super::*;

/// A BTF blob built record by record, as the kernel lays it out (little-endian).
struct Blob {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Blob {
    fn new() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
        }
    }

    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn words(&mut self, words: &[u32]) -> &mut Self {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self
    }

    /// A type header: name, kind, vlen, kind_flag, size or type.
    fn ty(&mut self, name: &str, kind: u32, vlen: u32, flag: bool, size: u32) -> &mut Self {
        let name = self.name(name);
        self.words(&[name, kind << 24 | vlen | u32::from(flag) << 31, size])
    }

    /// A member (or enum value) record: name, then the rest.
    fn rec(&mut self, name: &str, rest: &[u32]) -> &mut Self {
        let name = self.name(name);
        self.words(&[name]).words(rest)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        let len = self.types.len() as u32;
        for w in [24, 0, len, len, self.strings.len() as u32] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&self.types);
        b.extend_from_slice(&self.strings);
        b
    }
}

/// Types 1-10: ints, a struct with an anonymous union, bitfields of both encodings, an
/// array, and enums signed, unsigned and 64-bit.
fn sample() -> Btf {
    let mut b = Blob::new();
    b.ty("u16", KIND_INT, 0, false, 2).words(&[16]); // 1
    b.ty("u32", KIND_INT, 0, false, 4).words(&[32]); // 2
    b.ty("u8", KIND_INT, 0, false, 1).words(&[3]); // 3: a 3-bit int (old bitfield encoding)
    b.ty("", KIND_UNION, 2, false, 4) // 4
        .rec("u", &[2, 0])
        .rec("half", &[1, 0]);
    b.ty("outer", KIND_STRUCT, 5, true, 24) // 5 (kind_flag: bitfield widths in records)
        .rec("x", &[2, 0])
        .rec("", &[4, 32])
        .rec("flags", &[2, 3 << 24 | 64])
        .rec("old", &[3, 96])
        .rec("arr", &[6, 128]);
    b.ty("", KIND_ARRAY, 0, false, 0).words(&[2, 2, 17]); // 6
    b.ty("e", KIND_ENUM, 2, false, 4) // 7: unsigned
        .rec("BIG", &[u32::MAX])
        .rec("ONE", &[1]);
    b.ty("s", KIND_ENUM, 1, true, 4).rec("NEG", &[u32::MAX]); // 8: signed
    b.ty("", KIND_ENUM64, 1, false, 8)
        .rec("HUGE", &[0, 1 << 31]); // 9
    b.ty("t", KIND_TYPEDEF, 0, false, 5); // 10
    Btf::parse(b.bytes()).expect("sample BTF parses")
}

#[test]
fn members_resolve_through_anonymous_unions() {
    let btf = sample();
    assert_eq!(btf.member_layout("outer", "x").unwrap(), (0, 4));
    assert_eq!(btf.member_layout("outer", "u").unwrap(), (4, 4));
    assert_eq!(btf.member_layout("outer", "half").unwrap(), (4, 2));
    assert_eq!(btf.struct_size("outer").unwrap(), 24);
    assert_eq!(btf.array_len("outer", "arr").unwrap(), 17);
}

#[test]
fn bitfields_are_refused_even_on_a_byte_boundary() {
    let btf = sample();
    for member in ["flags", "old"] {
        let err = btf.member_offset("outer", member).unwrap_err().to_string();
        assert!(err.contains("bitfield"), "{member}: {err}");
    }
}

#[test]
fn enum_values_keep_their_sign() {
    let btf = sample();
    assert_eq!(btf.enum_value("e", "BIG").unwrap(), i128::from(u32::MAX));
    assert_eq!(btf.enum_value("e", "ONE").unwrap(), 1);
    assert_eq!(btf.enum_value("s", "NEG").unwrap(), -1);
    assert_eq!(btf.enum_value("", "HUGE").unwrap(), 1i128 << 63);
}

#[test]
fn what_is_missing_is_named() {
    let btf = sample();
    let missing = |r: Result<u32, Error>| r.unwrap_err().to_string();
    assert!(missing(btf.member_offset("outer", "nope")).contains("struct outer member nope"));
    assert!(missing(btf.member_offset("absent", "x")).contains("struct absent member x"));
    assert!(missing(btf.struct_size("absent")).contains("struct absent"));
    assert!(missing(btf.array_len("outer", "x")).contains("array struct outer member x"));
    let err = btf.enum_value("e", "NONE").unwrap_err().to_string();
    assert!(err.contains("enum e value NONE"), "{err}");
}

#[test]
fn malformed_blobs_are_refused_with_the_reason() {
    let good = {
        let mut b = Blob::new();
        b.ty("u32", KIND_INT, 0, false, 4).words(&[32]);
        b.bytes()
    };
    assert!(Btf::parse(good.clone()).is_ok());
    let refused = |data: Vec<u8>| Btf::parse(data).err().expect("refused");
    assert!(refused(good[..10].to_vec()).contains("too short"));
    let mut magic = good.clone();
    magic[0] = 0;
    assert!(refused(magic).contains("bad magic"));
    let mut header = good.clone();
    header[4] = 8;
    assert!(refused(header).contains("header length 8"));
    let mut past_end = good.clone();
    past_end[20] = 0xff; // str_len
    assert!(refused(past_end).contains("past the end"));
    let mut truncated = Blob::new();
    truncated.words(&[0, KIND_INT << 24]);
    assert!(refused(truncated.bytes()).contains("truncated"));
    let mut unknown = Blob::new();
    unknown.ty("x", 31, 0, false, 0);
    assert!(refused(unknown.bytes()).contains("unknown BTF kind 31"));
}
