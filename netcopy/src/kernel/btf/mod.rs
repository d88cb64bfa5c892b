//! A small reader for the kernel's BTF: just enough to find struct member offsets (through
//! anonymous unions and structs) and enum values, so no kernel layout is ever a literal.
//!
//! aya parses BTF too, but keeps member data private; the format is simple enough to read here.

use std::{borrow::Cow, path::Path};

use crate::error::Error;

const MAGIC: u16 = 0xeb9f;
const HEADER_MIN: usize = 24;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One parsed type header; `extra` is where its kind-specific records start in `data`.
#[derive(Clone, Copy)]
struct TypeEntry {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
    extra: usize,
}

/// One member record of a struct or union.
#[derive(Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits from the start of the struct (or of the anonymous member it is in).
    bits: u32,
    /// Bitfield width from the record (kind_flag structs); 0 otherwise.
    width: u32,
}

/// The kernel's BTF, read from a file such as /sys/kernel/btf/vmlinux.
pub struct Btf {
    data: Vec<u8>,
    strings: usize,
    strings_len: usize,
    /// Index = type id - 1 (id 0 is void).
    types: Vec<TypeEntry>,
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Reads and indexes the BTF file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let data = std::fs::read(path).map_err(|source| Error::BtfRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(data).map_err(|what| Error::BtfMalformed {
            path: path.to_owned(),
            what,
        })
    }

    fn parse(data: Vec<u8>) -> Result<Self, String> {
        let short = || "file too short for a BTF header".to_owned();
        if u16_at(&data, 0).ok_or_else(short)? != MAGIC {
            return Err("bad magic (not little-endian BTF)".into());
        }
        let hdr_len = u32_at(&data, 4).ok_or_else(short)? as usize;
        if hdr_len < HEADER_MIN {
            return Err(format!("header length {hdr_len} is too small"));
        }
        let field = |at| u32_at(&data, at).map(|v| v as usize).ok_or_else(short);
        let (type_off, type_len) = (field(8)?, field(12)?);
        let (str_off, str_len) = (field(16)?, field(20)?);
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = hdr_len + str_off;
        if types_end > data.len() || strings + str_len > data.len() {
            return Err("sections run past the end of the file".into());
        }

        let mut types = Vec::new();
        let mut at = types_start;
        while at < types_end {
            let read = |off| u32_at(&data, at + off).ok_or("truncated type record");
            let (name_off, info, size_or_type) = (read(0)?, read(4)?, read(8)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = at + 12;
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                0..=19 => 0,
                other => return Err(format!("unknown BTF kind {other}")),
            };
            types.push(TypeEntry {
                name_off,
                kind,
                vlen,
                kind_flag: info >> 31 == 1,
                size_or_type,
                extra,
            });
            at = extra + extra_len;
        }
        Ok(Self {
            data,
            strings,
            strings_len: str_len,
            types,
        })
    }

    fn name(&self, off: u32) -> Cow<'_, str> {
        let start = self.strings + off as usize;
        let end = self.strings + self.strings_len;
        let bytes = self.data.get(start..end).unwrap_or_default();
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..len])
    }

    fn entry(&self, id: u32) -> Option<&TypeEntry> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// Follows typedefs and qualifiers down to the type they name.
    fn resolve(&self, mut id: u32) -> Option<(u32, &TypeEntry)> {
        for _ in 0..32 {
            let entry = self.entry(id)?;
            match entry.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = entry.size_or_type;
                }
                _ => return Some((id, entry)),
            }
        }
        None
    }

    fn find(&self, name: &str, kinds: &[u32]) -> Option<(u32, &TypeEntry)> {
        self.types.iter().enumerate().find_map(|(i, entry)| {
            (kinds.contains(&entry.kind) && self.name(entry.name_off) == name)
                .then_some((i as u32 + 1, entry))
        })
    }

    /// Each member of a struct or union: name offset, type id, bit offset, and bitfield width
    /// (0: not a bitfield, as far as the member record says).
    fn members(&self, entry: &TypeEntry) -> impl Iterator<Item = Member> + '_ {
        let (extra, vlen, kind_flag) = (entry.extra, entry.vlen, entry.kind_flag);
        (0..vlen).filter_map(move |i| {
            let at = extra + 12 * i;
            let raw = u32_at(&self.data, at + 8)?;
            // With kind_flag set the high byte is the bitfield's width; the offset is the rest.
            let (bits, width) = if kind_flag {
                (raw & 0x00ff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            Some(Member {
                name_off: u32_at(&self.data, at)?,
                type_id: u32_at(&self.data, at + 4)?,
                bits,
                width,
            })
        })
    }

    /// `name` in the struct or union `entry`, looking through anonymous members the way C
    /// does; its bit offset is from the start of `entry`.
    fn member(&self, entry: &TypeEntry, name: &str) -> Option<Member> {
        for m in self.members(entry) {
            if m.name_off != 0 {
                if self.name(m.name_off) == name {
                    return Some(m);
                }
                continue;
            }
            if let Some((_, inner)) = self.resolve(m.type_id)
                && matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                && let Some(found) = self.member(inner, name)
            {
                return Some(Member {
                    bits: m.bits + found.bits,
                    ..found
                });
            }
        }
        None
    }

    /// Whether a member of type `type_id` and record width `width` is a bitfield: a width in
    /// the member record (kind_flag structs), or an int type narrower than its storage (the
    /// older encoding, where the int itself carries the bit count).
    fn is_bitfield(&self, type_id: u32, width: u32) -> bool {
        if width != 0 {
            return true;
        }
        match self.resolve(type_id) {
            Some((_, e)) if e.kind == KIND_INT => {
                let encoding = u32_at(&self.data, e.extra).unwrap_or_default();
                let (offset, nr_bits) = ((encoding >> 16) & 0xff, encoding & 0xff);
                offset != 0 || nr_bits != e.size_or_type * 8
            }
            _ => false,
        }
    }

    /// Size in bytes of a type, following typedefs and qualifiers.
    fn size_of(&self, id: u32) -> Option<u32> {
        let (_, entry) = self.resolve(id)?;
        match entry.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                Some(entry.size_or_type)
            }
            KIND_PTR => Some(8), // on the 64-bit kernels netcopy supports
            _ => None,
        }
    }

    /// Size in bytes of `struct struct_name`.
    pub fn struct_size(&self, struct_name: &str) -> Result<u32, Error> {
        self.find(struct_name, &[KIND_STRUCT, KIND_UNION])
            .map(|(_, entry)| entry.size_or_type)
            .ok_or_else(|| Error::BtfMissing {
                what: format!("struct {struct_name}"),
            })
    }

    /// Byte offset of the member chain `chain` (members separated by dots, e.g.
    /// `__sk_common.skc_num`) inside `struct_name`.
    pub fn member_offset(&self, struct_name: &str, chain: &str) -> Result<u32, Error> {
        self.member_layout(struct_name, chain)
            .map(|(offset, _)| offset)
    }

    /// Byte offset and size of `chain` inside `struct_name`.
    pub fn member_layout(&self, struct_name: &str, chain: &str) -> Result<(u32, u32), Error> {
        let (bits, type_id) = self.member_chain(struct_name, chain)?;
        Ok((bits / 8, self.size_of(type_id).unwrap_or(0)))
    }

    /// Number of elements of the array member `chain` of `struct_name` (for example
    /// `skb_shared_info.frags`, whose length is the kernel's MAX_SKB_FRAGS).
    pub fn array_len(&self, struct_name: &str, chain: &str) -> Result<u32, Error> {
        let (_, type_id) = self.member_chain(struct_name, chain)?;
        match self.resolve(type_id) {
            // btf_array: element type, index type, nelems.
            Some((_, e)) if e.kind == KIND_ARRAY => u32_at(&self.data, e.extra + 8),
            _ => None,
        }
        .ok_or_else(|| Error::BtfMissing {
            what: format!("array struct {struct_name} member {chain}"),
        })
    }

    /// Bit offset and type id of `chain` inside `struct_name`; a bitfield is refused (a byte
    /// read of it would take its neighbours' bits too).
    fn member_chain(&self, struct_name: &str, chain: &str) -> Result<(u32, u32), Error> {
        let missing = || Error::BtfMissing {
            what: format!("struct {struct_name} member {chain}"),
        };
        let (_, mut entry) = self
            .find(struct_name, &[KIND_STRUCT, KIND_UNION])
            .ok_or_else(missing)?;
        let mut bits = 0;
        let mut last = None;
        let mut parts = chain.split('.').peekable();
        while let Some(part) = parts.next() {
            let m = self.member(entry, part).ok_or_else(missing)?;
            bits += m.bits;
            if parts.peek().is_some() {
                entry = self.resolve(m.type_id).ok_or_else(missing)?.1;
            }
            last = Some(m);
        }
        let last = last.ok_or_else(missing)?;
        if bits % 8 != 0 || self.is_bitfield(last.type_id, last.width) {
            return Err(Error::BtfMissing {
                what: format!(
                    "byte-aligned struct {struct_name} member {chain} (it is a bitfield)"
                ),
            });
        }
        Ok((bits, last.type_id))
    }

    /// Value of `variant` in the enum `enum_name` (anonymous enums: pass ""). BTF marks signed
    /// enums with kind_flag; the others are unsigned and read as such.
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Result<i128, Error> {
        for entry in &self.types {
            if !matches!(entry.kind, KIND_ENUM | KIND_ENUM64)
                || self.name(entry.name_off) != enum_name
            {
                continue;
            }
            let stride = if entry.kind == KIND_ENUM { 8 } else { 12 };
            for i in 0..entry.vlen {
                let at = entry.extra + stride * i;
                let Some(name_off) = u32_at(&self.data, at) else {
                    continue;
                };
                if self.name(name_off) != variant {
                    continue;
                }
                let lo = u32_at(&self.data, at + 4).unwrap_or_default();
                let signed = entry.kind_flag;
                return Ok(if entry.kind == KIND_ENUM {
                    if signed {
                        i128::from(lo as i32)
                    } else {
                        i128::from(lo)
                    }
                } else {
                    let hi = u32_at(&self.data, at + 8).unwrap_or_default();
                    let v = (u64::from(hi) << 32) | u64::from(lo);
                    if signed {
                        i128::from(v as i64)
                    } else {
                        i128::from(v)
                    }
                });
            }
        }
        Err(Error::BtfMissing {
            what: format!("enum {enum_name} value {variant}"),
        })
    }
}

mod funcs;
#[cfg(test)]
mod tests;
