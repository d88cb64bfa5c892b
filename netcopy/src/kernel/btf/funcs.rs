//! Functions and tracepoints in BTF: what a fentry or kprobe body relies on, checked before it
//! is loaded (a function's signature has no stable ABI).

use super::{
    Btf, KIND_CONST, KIND_ENUM, KIND_ENUM64, KIND_FLOAT, KIND_INT, KIND_PTR, KIND_RESTRICT,
    KIND_STRUCT, KIND_TYPEDEF, KIND_UNION, KIND_VOLATILE, u32_at,
};

const KIND_FUNC: u32 = 12;

impl Btf {
    /// The parameter types of the kernel function `name`, spelt as C does (`struct sock *`,
    /// `size_t`, `int`), or None when BTF has no such function (inlined, renamed, or gone).
    pub fn function_params(&self, name: &str) -> Option<Vec<String>> {
        let (_, func) = self.find(name, &[KIND_FUNC])?;
        let proto = self.entry(func.size_or_type)?;
        (0..proto.vlen)
            .map(|i| {
                // btf_param: name offset, type id.
                let type_id = u32_at(&self.data, proto.extra + 8 * i + 4)?;
                Some(self.type_name(type_id))
            })
            .collect()
    }

    /// Whether BTF describes the tracepoint `name` (`btf_trace_<name>`), as tp_btf needs.
    pub fn has_tracepoint(&self, name: &str) -> bool {
        self.find(&format!("btf_trace_{name}"), &[KIND_TYPEDEF])
            .is_some()
    }

    /// A type as C spells it; anything unusual is named by its kind.
    fn type_name(&self, id: u32) -> String {
        let Some(entry) = self.entry(id) else {
            return "void".to_owned();
        };
        let name = self.name(entry.name_off);
        match entry.kind {
            KIND_PTR => format!("{} *", self.type_name(entry.size_or_type)),
            KIND_CONST => format!("const {}", self.type_name(entry.size_or_type)),
            KIND_VOLATILE | KIND_RESTRICT => self.type_name(entry.size_or_type),
            KIND_STRUCT => format!("struct {name}"),
            KIND_UNION => format!("union {name}"),
            KIND_ENUM | KIND_ENUM64 => format!("enum {name}"),
            KIND_INT | KIND_TYPEDEF | KIND_FLOAT => name.into_owned(),
            kind => format!("(BTF kind {kind})"),
        }
    }
}
