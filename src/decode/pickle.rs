//! Python pickle (protocols 0-5) -> [`Value`], by a data-only stack machine.
//!
//! Flask-Session 0.6 and older store a session as `pickle.dumps(dict(session))`; this module reads
//! such payloads so the dashboard can show them. It is our own reader rather than serde-pickle so
//! that class names, datetimes, `Decimal`s and UUIDs survive.
//!
//! It must never import, call or execute anything: a global is only a name, and a call on it
//! (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`, `BUILD`) stays data, read only when the name is one of a
//! few standard value types (`datetime`, `Decimal`, `UUID`, the builtin containers). It must never
//! panic, loop or use unbounded memory on hostile input: a length prefix is checked against the
//! remaining input before anything is allocated, and the memo, the number of objects, the nesting
//! depth and the size of the expanded tree are all capped.
//!
//! The machine builds an arena of `Node`s and the stack and memo hold indices into it, so a
//! container memoized while empty and filled later is one object wherever it is referenced. The
//! [`Value`] tree is built from the arena at `STOP`, expanding shared references; a reference back
//! to a container that is still being expanded (a list that contains itself) becomes the string
//! `"<recursive>"`, as a tree cannot hold a cycle.
//!
//! A call on an unknown class becomes [`Value::Object`] with the call's arguments; items it was
//! then given by `APPEND(S)` or `SETITEM(S)` (a list or dict subclass) follow as a list or map
//! argument, and `BUILD` sets its state. A class or function that is itself the value, not
//! called, becomes `Object { class: "global", args: ["module.name"] }`.

use std::collections::HashMap;
use std::fmt::Write as _;

use num_bigint::BigInt;

use super::Value;

/// Deepest nesting accepted in the decoded tree.
const MAX_DEPTH: usize = 200;
/// Most values in the decoded tree once shared references are expanded ("billion laughs").
const MAX_VALUES: usize = 1_000_000;
/// Most bytes of text, bytes and names in the decoded tree once shared references are expanded.
const MAX_TEXT: usize = 32 << 20;
/// Most objects the machine may create.
const MAX_OBJECTS: usize = 1_000_000;
/// Most memo entries.
const MAX_MEMO: usize = 1_000_000;
/// Longest `LONG4` integer in bytes (about 9,900 decimal digits).
const MAX_LONG_BYTES: u64 = 4096;
/// Longest text `INT`/`LONG` in digits: Python's own limit for `int(str)`.
const MAX_LONG_DIGITS: usize = 4300;
/// What a reference back to a container that is still being expanded becomes.
const RECURSIVE: &str = "<recursive>";

/// Why a pickle did not decode: what went wrong and at which byte, short enough for a status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PickleError(pub String);

/// Decodes a whole pickle into a [`Value`], without executing anything; the input must end at
/// `STOP`, so that bytes that only start like a pickle are not taken for one.
pub fn decode(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut machine = Machine::new(bytes);
    let root = machine.run()?;
    let mut builder = Builder { arena: &machine.arena, open: vec![false; machine.arena.len()], values: 0, text: 0 };
    builder.value(root, 0)
}

/// An index into the arena.
type Id = usize;
/// Arena slots created up front: constants shared by every reference.
const NONE: Id = 0;
const TRUE: Id = 1;
const FALSE: Id = 2;
const EMPTY_TUPLE: Id = 3;

/// One object the pickle created. Containers hold the ids of their items, so a container shared
/// through the memo is one node however often it is referenced.
enum Node {
    /// None, a bool, a number, text or bytes.
    Leaf(Value),
    /// A Python 2 `str` (`STRING`, `BINSTRING`): text when it is UTF-8, else bytes.
    Py2Str(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Set(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    /// A class or function by name: two text leaves, module and qualified name.
    Global {
        module: Id,
        name: Id,
    },
    Call(Box<Call>),
}

/// A call that was recorded, not made.
struct Call {
    /// A global, or `getattr(global, 'name')`.
    func: Id,
    /// A tuple.
    args: Id,
    /// A dict (`NEWOBJ_EX`).
    kwargs: Option<Id>,
    /// Set by `BUILD`.
    state: Option<Id>,
    /// Added by `APPEND(S)`/`ADDITEMS` and `SETITEM(S)`, which Python would send to the result.
    items: Vec<Id>,
    pairs: Vec<(Id, Id)>,
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Leaf(_) | Node::Py2Str(_) => "scalar",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Set(_) => "set",
            Node::Dict(_) => "dict",
            Node::Global { .. } => "global",
            Node::Call(_) => "object",
        }
    }
}

/// Every opcode of protocols 0-5 by byte, with the name pickletools gives it.
#[rustfmt::skip]
const OPCODES: [(u8, &str); 68] = [
    (b'(', "MARK"), (b'.', "STOP"), (b'0', "POP"), (b'1', "POP_MARK"), (b'2', "DUP"),
    (b'F', "FLOAT"), (b'I', "INT"), (b'J', "BININT"), (b'K', "BININT1"), (b'L', "LONG"),
    (b'M', "BININT2"), (b'N', "NONE"), (b'P', "PERSID"), (b'Q', "BINPERSID"), (b'R', "REDUCE"),
    (b'S', "STRING"), (b'T', "BINSTRING"), (b'U', "SHORT_BINSTRING"), (b'V', "UNICODE"),
    (b'X', "BINUNICODE"), (b'a', "APPEND"), (b'b', "BUILD"), (b'c', "GLOBAL"), (b'd', "DICT"),
    (b'}', "EMPTY_DICT"), (b'e', "APPENDS"), (b'g', "GET"), (b'h', "BINGET"), (b'i', "INST"),
    (b'j', "LONG_BINGET"), (b'l', "LIST"), (b']', "EMPTY_LIST"), (b'o', "OBJ"), (b'p', "PUT"),
    (b'q', "BINPUT"), (b'r', "LONG_BINPUT"), (b's', "SETITEM"), (b't', "TUPLE"),
    (b')', "EMPTY_TUPLE"), (b'u', "SETITEMS"), (b'G', "BINFLOAT"), (b'B', "BINBYTES"),
    (b'C', "SHORT_BINBYTES"), (0x80, "PROTO"), (0x81, "NEWOBJ"), (0x82, "EXT1"), (0x83, "EXT2"),
    (0x84, "EXT4"), (0x85, "TUPLE1"), (0x86, "TUPLE2"), (0x87, "TUPLE3"), (0x88, "NEWTRUE"),
    (0x89, "NEWFALSE"), (0x8a, "LONG1"), (0x8b, "LONG4"), (0x8c, "SHORT_BINUNICODE"),
    (0x8d, "BINUNICODE8"), (0x8e, "BINBYTES8"), (0x8f, "EMPTY_SET"), (0x90, "ADDITEMS"),
    (0x91, "FROZENSET"), (0x92, "NEWOBJ_EX"), (0x93, "STACK_GLOBAL"), (0x94, "MEMOIZE"),
    (0x95, "FRAME"), (0x96, "BYTEARRAY8"), (0x97, "NEXT_BUFFER"), (0x98, "READONLY_BUFFER"),
];

fn opcode_name(code: u8) -> Option<&'static str> {
    OPCODES.iter().find(|&&(c, _)| c == code).map(|&(_, name)| name)
}

/// The stack machine. Like CPython's, it keeps marks as stack positions and never pops below the
/// latest one (the fence).
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Where the current opcode starts, for messages.
    at: usize,
    op: &'static str,
    arena: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8]) -> Self {
        Machine {
            input,
            pos: 0,
            at: 0,
            op: "",
            arena: vec![
                Node::Leaf(Value::Null),
                Node::Leaf(Value::Bool(true)),
                Node::Leaf(Value::Bool(false)),
                Node::Tuple(Vec::new()),
            ],
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn fail(&self, what: &str) -> PickleError {
        PickleError(format!("{what} at byte {} ({})", self.at, self.op))
    }

    /// Runs to `STOP` and returns the object on top of the stack.
    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            self.at = self.pos;
            let Some(&code) = self.input.get(self.pos) else {
                return Err(PickleError(format!("truncated at byte {} (no STOP)", self.pos)));
            };
            self.pos += 1;
            self.op = opcode_name(code)
                .ok_or_else(|| PickleError(format!("unknown opcode {code:#04x} at byte {}", self.at)))?;
            if self.op == "STOP" {
                let root = self.pop()?;
                if self.pos < self.input.len() {
                    return Err(PickleError(format!("trailing bytes after STOP at byte {}", self.at)));
                }
                return Ok(root);
            }
            self.step()?;
        }
    }

    fn step(&mut self) -> Result<(), PickleError> {
        match self.op {
            "PROTO" => {
                let version = self.uint::<1>()?;
                if version > 5 {
                    return Err(self.fail(&format!("unsupported protocol {version}")));
                }
            }
            // Framing only groups opcodes; check the length and read on.
            "FRAME" => {
                let len = self.uint::<8>()?;
                self.check_len(len)?;
            }
            "MARK" => self.marks.push(self.stack.len()),
            // As in CPython, a POP right at a mark removes the mark.
            "POP" if self.marks.last() == Some(&self.stack.len()) => {
                self.marks.pop();
            }
            "POP" => {
                self.pop()?;
            }
            "POP_MARK" => {
                self.pop_mark()?;
            }
            "DUP" => {
                let top = self.top()?;
                self.stack.push(top);
            }
            "PUT" | "BINPUT" | "LONG_BINPUT" | "MEMOIZE" => {
                let key = self.memo_key()?;
                self.put(key)?;
            }
            "GET" | "BINGET" | "LONG_BINGET" => {
                let key = self.memo_key()?;
                self.get(key)?;
            }
            "NONE" => self.stack.push(NONE),
            "NEWTRUE" => self.stack.push(TRUE),
            "NEWFALSE" => self.stack.push(FALSE),
            "INT" => match self.line()? {
                b"01" => self.stack.push(TRUE),
                b"00" => self.stack.push(FALSE),
                text => self.number(text)?,
            },
            "LONG" => {
                let text = self.line()?;
                self.number(text.strip_suffix(b"L").unwrap_or(text))?;
            }
            "BININT" | "BININT1" | "BININT2" => {
                let n = match self.op {
                    "BININT" => i32::from_le_bytes(self.array()?).into(),
                    "BININT1" => i64::from(u8::from_le_bytes(self.array()?)),
                    _ => i64::from(u16::from_le_bytes(self.array()?)),
                };
                self.leaf(Value::Int(n))?;
            }
            "LONG1" | "LONG4" => {
                let bytes = self.prefixed()?;
                self.leaf(int_value(&BigInt::from_signed_bytes_le(bytes)))?;
            }
            "FLOAT" => {
                let text = self.line()?;
                let f = std::str::from_utf8(text).ok().and_then(|t| t.trim().parse().ok());
                let f = f.ok_or_else(|| self.fail("bad float"))?;
                self.leaf(Value::Float(f))?;
            }
            "BINFLOAT" => {
                let f = f64::from_be_bytes(self.array()?);
                self.leaf(Value::Float(f))?;
            }
            "STRING" => {
                let inner = match self.line()? {
                    [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
                    _ => return Err(self.fail("argument is not quoted")),
                };
                self.push_new(Node::Py2Str(unescape_py2(inner)))?;
            }
            "BINSTRING" | "SHORT_BINSTRING" => {
                let bytes = self.prefixed()?;
                self.push_new(Node::Py2Str(bytes.to_vec()))?;
            }
            "UNICODE" => {
                let text = self.line()?;
                self.leaf(Value::Str(raw_unicode_escape(text)))?;
            }
            "BINUNICODE" | "SHORT_BINUNICODE" | "BINUNICODE8" => {
                let bytes = self.prefixed()?;
                self.leaf(Value::Str(String::from_utf8_lossy(bytes).into_owned()))?;
            }
            "BINBYTES" | "SHORT_BINBYTES" | "BINBYTES8" | "BYTEARRAY8" => {
                let bytes = self.prefixed()?;
                self.leaf(Value::Bytes(bytes.to_vec()))?;
            }
            "EMPTY_TUPLE" => self.stack.push(EMPTY_TUPLE),
            "EMPTY_LIST" => self.push_new(Node::List(Vec::new()))?,
            "EMPTY_DICT" => self.push_new(Node::Dict(Vec::new()))?,
            "EMPTY_SET" => self.push_new(Node::Set(Vec::new()))?,
            "TUPLE" | "LIST" | "DICT" | "FROZENSET" => {
                let items = self.pop_mark()?;
                let node = match self.op {
                    "TUPLE" => Node::Tuple(items),
                    "LIST" => Node::List(items),
                    "DICT" => Node::Dict(self.pairs(items)?),
                    _ => Node::Set(items),
                };
                self.push_new(node)?;
            }
            "TUPLE1" | "TUPLE2" | "TUPLE3" => {
                let n = match self.op {
                    "TUPLE1" => 1,
                    "TUPLE2" => 2,
                    _ => 3,
                };
                let start = self.stack.len().checked_sub(n).filter(|&s| s >= self.fence());
                let start = start.ok_or_else(|| self.fail("stack underflow"))?;
                let items = self.stack.split_off(start);
                self.push_new(Node::Tuple(items))?;
            }
            "APPEND" => {
                let item = self.pop()?;
                self.add_items(vec![item])?;
            }
            "APPENDS" | "ADDITEMS" => {
                let items = self.pop_mark()?;
                self.add_items(items)?;
            }
            "SETITEM" => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![(key, value)])?;
            }
            "SETITEMS" => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.set_items(pairs)?;
            }
            "GLOBAL" => {
                let global = self.global_line()?;
                self.stack.push(global);
            }
            "STACK_GLOBAL" => {
                let name = self.pop()?;
                let module = self.pop()?;
                if text(&self.arena, module).is_none() || text(&self.arena, name).is_none() {
                    return Err(self.fail("module and name are not strings"));
                }
                self.push_new(Node::Global { module, name })?;
            }
            "INST" => {
                let class = self.global_line()?;
                let items = self.pop_mark()?;
                let args = self.add(Node::Tuple(items))?;
                self.call(class, args, None)?;
            }
            "OBJ" => {
                let items = self.pop_mark()?;
                let Some((&class, args)) = items.split_first() else {
                    return Err(self.fail("no class"));
                };
                let args = self.add(Node::Tuple(args.to_vec()))?;
                self.call(class, args, None)?;
            }
            "REDUCE" | "NEWOBJ" => {
                let args = self.pop()?;
                let func = self.pop()?;
                self.call(func, args, None)?;
            }
            "NEWOBJ_EX" => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                self.call(class, args, Some(kwargs))?;
            }
            // Only recorded calls take state; on anything else BUILD is ignored.
            "BUILD" => {
                let state = self.pop()?;
                let target = self.top()?;
                if let Some(Node::Call(call)) = self.arena.get_mut(target) {
                    call.state = Some(state);
                }
            }
            op => {
                let why = match op {
                    "PERSID" | "BINPERSID" => "needs the application's persistent_load",
                    "EXT1" | "EXT2" | "EXT4" => "needs the copyreg extension registry",
                    "NEXT_BUFFER" | "READONLY_BUFFER" => "needs out-of-band buffers",
                    _ => "not handled",
                };
                return Err(PickleError(format!("unsupported opcode {op} at byte {} ({why})", self.at)));
            }
        }
        Ok(())
    }

    /// The length of the rest of the input as `usize` when it has at least `len` bytes.
    fn check_len(&self, len: u64) -> Result<usize, PickleError> {
        let left = self.input.len().saturating_sub(self.pos);
        usize::try_from(len)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| PickleError(format!("truncated at byte {} ({} needs {len} bytes)", self.at, self.op)))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], PickleError> {
        let len = self.check_len(len)?;
        let input = self.input;
        let bytes = input.get(self.pos..self.pos + len).unwrap_or_default();
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    /// A little-endian unsigned integer of `N` (at most 8) bytes.
    fn uint<const N: usize>(&mut self) -> Result<u64, PickleError> {
        let bytes = self.array::<N>()?;
        Ok(bytes.iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The payload of an opcode with a length prefix, whose width depends on the opcode.
    fn prefixed(&mut self) -> Result<&'a [u8], PickleError> {
        let len = match self.op {
            "SHORT_BINSTRING" | "SHORT_BINUNICODE" | "SHORT_BINBYTES" | "LONG1" => self.uint::<1>()?,
            "BINUNICODE" | "BINBYTES" => self.uint::<4>()?,
            "BINSTRING" | "LONG4" => {
                let len = i32::from_le_bytes(self.array()?);
                u64::try_from(len).map_err(|_| self.fail("negative length"))?
            }
            _ => self.uint::<8>()?,
        };
        if self.op == "LONG4" && len > MAX_LONG_BYTES {
            return Err(self.fail(&format!("integer of {len} bytes is longer than {MAX_LONG_BYTES}")));
        }
        self.take(len)
    }

    /// A protocol 0 argument: the bytes up to the next newline, which is consumed.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(PickleError(format!("truncated at byte {} ({} needs a newline)", self.at, self.op)));
        };
        self.pos += end + 1;
        Ok(rest.get(..end).unwrap_or_default())
    }

    /// The memo index of a PUT or GET; MEMOIZE takes the next free one, as Python does.
    fn memo_key(&mut self) -> Result<u64, PickleError> {
        match self.op {
            "PUT" | "GET" => {
                let text = std::str::from_utf8(self.line()?).ok();
                let key = text.and_then(|t| t.trim().parse().ok());
                key.ok_or_else(|| self.fail("bad memo key"))
            }
            "BINPUT" | "BINGET" => self.uint::<1>(),
            "MEMOIZE" => Ok(self.memo.len() as u64),
            _ => self.uint::<4>(),
        }
    }

    fn number(&mut self, text: &[u8]) -> Result<(), PickleError> {
        let value = int_text(text).ok_or_else(|| self.fail("bad or too long integer"))?;
        self.leaf(value)
    }

    fn global_line(&mut self) -> Result<Id, PickleError> {
        let module = String::from_utf8_lossy(self.line()?).into_owned();
        let name = String::from_utf8_lossy(self.line()?).into_owned();
        let module = self.add(Node::Leaf(Value::Str(module)))?;
        let name = self.add(Node::Leaf(Value::Str(name)))?;
        self.add(Node::Global { module, name })
    }

    fn add(&mut self, node: Node) -> Result<Id, PickleError> {
        if self.arena.len() > MAX_OBJECTS {
            return Err(self.fail(&format!("more than {MAX_OBJECTS} objects")));
        }
        self.arena.push(node);
        Ok(self.arena.len() - 1)
    }

    fn push_new(&mut self, node: Node) -> Result<(), PickleError> {
        let id = self.add(node)?;
        self.stack.push(id);
        Ok(())
    }

    fn leaf(&mut self, value: Value) -> Result<(), PickleError> {
        self.push_new(Node::Leaf(value))
    }

    fn kind(&self, id: Id) -> &'static str {
        self.arena.get(id).map_or("missing object", Node::kind)
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    fn top(&self) -> Result<Id, PickleError> {
        let top = self.stack.last().copied().filter(|_| self.stack.len() > self.fence());
        top.ok_or_else(|| self.fail("stack underflow"))
    }

    /// The objects pushed since the latest mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        match self.marks.pop() {
            Some(mark) if mark <= self.stack.len() => Ok(self.stack.split_off(mark)),
            _ => Err(self.fail("no MARK")),
        }
    }

    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.fail("odd number of items"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    fn put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(self.fail(&format!("memo larger than {MAX_MEMO} entries")));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn get(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.memo.get(&key).copied();
        let id = id.ok_or_else(|| self.fail(&format!("memo key {key} missing")))?;
        self.stack.push(id);
        Ok(())
    }

    fn add_items(&mut self, items: Vec<Id>) -> Result<(), PickleError> {
        let target = self.top()?;
        match self.arena.get_mut(target) {
            Some(Node::List(v) | Node::Set(v)) => v.extend(items),
            Some(Node::Call(call)) => call.items.extend(items),
            _ => return Err(self.fail(&format!("cannot add items to a {}", self.kind(target)))),
        }
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<(Id, Id)>) -> Result<(), PickleError> {
        let target = self.top()?;
        match self.arena.get_mut(target) {
            Some(Node::Dict(v)) => v.extend(pairs),
            Some(Node::Call(call)) => call.pairs.extend(pairs),
            _ => return Err(self.fail(&format!("cannot set items on a {}", self.kind(target)))),
        }
        Ok(())
    }

    /// Records a call; nothing is called.
    fn call(&mut self, func: Id, args: Id, kwargs: Option<Id>) -> Result<(), PickleError> {
        if callable_parts(&self.arena, func).is_none() {
            return Err(self.fail(&format!("cannot call a {}", self.kind(func))));
        }
        if !matches!(self.arena.get(args), Some(Node::Tuple(_))) {
            return Err(self.fail(&format!("arguments are a {}, not a tuple", self.kind(args))));
        }
        if let Some(kw) = kwargs
            && !matches!(self.arena.get(kw), Some(Node::Dict(_)))
        {
            return Err(self.fail(&format!("keywords are a {}, not a dict", self.kind(kw))));
        }
        let call = Call { func, args, kwargs, state: None, items: Vec::new(), pairs: Vec::new() };
        self.push_new(Node::Call(Box::new(call)))
    }
}

fn text(arena: &[Node], id: Id) -> Option<&str> {
    match arena.get(id) {
        Some(Node::Leaf(Value::Str(s))) => Some(s),
        _ => None,
    }
}

fn global(arena: &[Node], id: Id) -> Option<(&str, &str)> {
    match arena.get(id) {
        Some(Node::Global { module, name }) => Some((text(arena, *module)?, text(arena, *name)?)),
        _ => None,
    }
}

/// Module, name and attribute of something a pickle may call: a global, or `getattr(global,
/// 'attr')` (how `zoneinfo.ZoneInfo._unpickle` is pickled). Borrowed, so checking costs nothing.
fn callable_parts(arena: &[Node], id: Id) -> Option<(&str, &str, Option<&str>)> {
    if let Some((module, name)) = global(arena, id) {
        return Some((module, name, None));
    }
    let Some(Node::Call(call)) = arena.get(id) else {
        return None;
    };
    if !matches!(global(arena, call.func)?, ("builtins" | "__builtin__", "getattr")) {
        return None;
    }
    let Some(Node::Tuple(args)) = arena.get(call.args) else {
        return None;
    };
    let [target, attr] = args.as_slice() else {
        return None;
    };
    let (module, name) = global(arena, *target)?;
    Some((module, name, Some(text(arena, *attr)?)))
}

/// `module.name` under its Python 3 name (pickles of protocol 0-2 use Python 2 names).
fn qualified(module: &str, name: &str) -> String {
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        other => other,
    };
    let name = match (module, name) {
        ("builtins", "unicode" | "basestring") => "str",
        ("builtins", "long") => "int",
        ("builtins", "xrange") => "range",
        (_, other) => other,
    };
    format!("{module}.{name}")
}

/// Expands the arena into a tree, within the depth and size limits.
struct Builder<'a> {
    arena: &'a [Node],
    /// The nodes on the path from the root to the one being expanded.
    open: Vec<bool>,
    values: usize,
    text: usize,
}

impl<'a> Builder<'a> {
    /// The recursion is `value` -> `values`/`pairs`/`call` -> `value`; everything else is out of
    /// line to keep these frames small: 200 levels of objects take about 600 KB of stack in a
    /// debug build and under 200 KB in release.
    fn value(&mut self, id: Id, depth: usize) -> Result<Value, PickleError> {
        self.values += 1;
        let arena = self.arena;
        let (Some(node), Some(open), true, true) =
            (arena.get(id), self.open.get_mut(id), depth <= MAX_DEPTH, self.values <= MAX_VALUES)
        else {
            return Err(self.limit(depth));
        };
        if *open {
            return Ok(Value::Str(RECURSIVE.into()));
        }
        *open = true;
        let value = match node {
            Node::List(ids) => self.values(ids, depth + 1).map(Value::List),
            Node::Tuple(ids) => self.values(ids, depth + 1).map(Value::Tuple),
            Node::Set(ids) => self.values(ids, depth + 1).map(Value::Set),
            Node::Dict(pairs) => self.pairs(pairs, depth + 1).map(Value::Map),
            Node::Call(call) => self.call(call, depth + 1),
            _ => self.scalar(id, node),
        };
        if let Some(open) = self.open.get_mut(id) {
            *open = false;
        }
        value
    }

    /// Why `value` stopped.
    #[cold]
    #[inline(never)]
    fn limit(&self, depth: usize) -> PickleError {
        PickleError(if depth > MAX_DEPTH {
            format!("nesting deeper than {MAX_DEPTH}")
        } else if self.values > MAX_VALUES {
            format!("more than {MAX_VALUES} values once shared references are expanded")
        } else {
            "dangling reference".into()
        })
    }

    #[inline(never)]
    fn scalar(&mut self, id: Id, node: &Node) -> Result<Value, PickleError> {
        Ok(match node {
            Node::Leaf(v) => {
                self.spend(match v {
                    Value::Str(s) | Value::BigInt(s) => s.len(),
                    Value::Bytes(b) => b.len(),
                    _ => 0,
                })?;
                v.clone()
            }
            Node::Py2Str(b) => {
                self.spend(b.len())?;
                match std::str::from_utf8(b) {
                    Ok(s) => Value::Str(s.to_owned()),
                    Err(_) => Value::Bytes(b.clone()),
                }
            }
            // A class or function itself, not an instance: `<global "module.name">`.
            _ => Value::Object { class: "global".into(), args: vec![Value::Str(self.name(id)?)], state: None },
        })
    }

    fn spend(&mut self, bytes: usize) -> Result<(), PickleError> {
        self.text = self.text.saturating_add(bytes);
        if self.text > MAX_TEXT {
            return Err(PickleError(format!("more than {MAX_TEXT} bytes of text once shared references are expanded")));
        }
        Ok(())
    }

    fn values(&mut self, ids: &[Id], depth: usize) -> Result<Vec<Value>, PickleError> {
        let mut out = Vec::new();
        for &id in ids {
            out.push(self.value(id, depth)?);
        }
        Ok(out)
    }

    fn pairs(&mut self, pairs: &[(Id, Id)], depth: usize) -> Result<Vec<(Value, Value)>, PickleError> {
        let mut out = Vec::new();
        for &(k, v) in pairs {
            out.push((self.value(k, depth)?, self.value(v, depth)?));
        }
        Ok(out)
    }

    fn name(&mut self, id: Id) -> Result<String, PickleError> {
        let name = match callable_parts(self.arena, id) {
            Some((module, name, None)) => qualified(module, name),
            Some((module, name, Some(attr))) => format!("{}.{attr}", qualified(module, name)),
            None => "?".into(),
        };
        self.spend(name.len())?;
        Ok(name)
    }

    fn call(&mut self, call: &'a Call, depth: usize) -> Result<Value, PickleError> {
        let (class, args) = self.callee(call)?;
        let kwargs = match call.kwargs.and_then(|k| self.arena.get(k)) {
            Some(Node::Dict(pairs)) => self.pairs(pairs, depth)?,
            _ => Vec::new(),
        };
        let state = match call.state {
            Some(state) => Some(self.value(state, depth)?),
            None => None,
        };
        let parts = Parts {
            class,
            args: self.values(args, depth)?,
            kwargs,
            state,
            items: self.values(&call.items, depth)?,
            pairs: self.pairs(&call.pairs, depth)?,
        };
        Ok(parts.interpret())
    }

    /// The class a call makes and the ids of its arguments.
    #[inline(never)]
    fn callee(&mut self, call: &Call) -> Result<(String, &'a [Id]), PickleError> {
        let arena = self.arena;
        let args: &'a [Id] = match arena.get(call.args) {
            Some(Node::Tuple(ids)) => ids,
            _ => &[],
        };
        let class = self.name(call.func)?;
        // `copyreg._reconstructor(cls, base, state)` is how protocols 0 and 1 pickle an instance
        // of `cls`; `state` is only given when `base` is not `object`.
        if let ("copyreg._reconstructor", &[cls, _, state]) = (class.as_str(), args)
            && callable_parts(arena, cls).is_some()
        {
            let none = matches!(arena.get(state), Some(Node::Leaf(Value::Null)));
            let args = if none { &[] } else { args.get(2..).unwrap_or_default() };
            return Ok((self.name(cls)?, args));
        }
        Ok((class, args))
    }
}

/// A recorded call, expanded.
struct Parts {
    class: String,
    args: Vec<Value>,
    kwargs: Vec<(Value, Value)>,
    state: Option<Value>,
    items: Vec<Value>,
    pairs: Vec<(Value, Value)>,
}

impl Parts {
    /// The value a call on a known standard type makes; anything else, or a known name with
    /// arguments it does not recognise, stays a [`Value::Object`].
    #[inline(never)]
    fn interpret(mut self) -> Value {
        self.known().unwrap_or_else(|| self.into_object())
    }

    /// Takes parts out of `self` only when it returns `Some`.
    fn known(&mut self) -> Option<Value> {
        use std::mem::take;
        let class = self.class.as_str();
        match (class, self.args.as_mut_slice()) {
            ("datetime.datetime", [stamp, tz @ ..]) => {
                let [y0, y1, month, day, h, m, s, u0, u1, u2] = state_bytes(stamp)?;
                let (year, us) = (u16::from_be_bytes([y0, y1]), u32::from_be_bytes([0, u0, u1, u2]));
                let date = date_text(year, month & 0x7f, day)?;
                let time = time_text(h, m, s, us)?;
                let local = chrono::NaiveDate::from_ymd_opt(i32::from(year), u32::from(month & 0x7f), u32::from(day))
                    .and_then(|d| d.and_hms_micro_opt(u32::from(h), u32::from(m), u32::from(s), us))
                    .map(|t| (t, month & 0x80 != 0));
                with_zone(class, format!("{date}T{time}"), tz, local, Value::DateTime)
            }
            ("datetime.date", [stamp]) => {
                let [y0, y1, month, day] = state_bytes(stamp)?;
                date_text(u16::from_be_bytes([y0, y1]), month, day).map(Value::Date)
            }
            ("datetime.time", [stamp, tz @ ..]) => {
                let [h, m, s, u0, u1, u2] = state_bytes(stamp)?;
                let time = time_text(h & 0x7f, m, s, u32::from_be_bytes([0, u0, u1, u2]))?;
                with_zone(class, time, tz, None, Value::Time)
            }
            ("datetime.timedelta", [Value::Int(d), Value::Int(s), Value::Int(us)]) => {
                let total = micros(*d, *s, *us);
                let rest = total.rem_euclid(86_400_000_000);
                Some(Value::TimeDelta {
                    days: i64::try_from(total.div_euclid(86_400_000_000)).ok()?,
                    seconds: i64::try_from(rest / 1_000_000).ok()?,
                    micros: i64::try_from(rest % 1_000_000).ok()?,
                })
            }
            ("zoneinfo.ZoneInfo._unpickle", [Value::Str(key), ..]) => Some(Value::Object {
                class: "zoneinfo.ZoneInfo".into(),
                args: vec![Value::Str(take(key))],
                state: None,
            }),
            ("_codecs.encode", [Value::Str(s)]) => Some(Value::Bytes(s.as_bytes().to_vec())),
            ("_codecs.encode", [Value::Str(s), Value::Str(enc)]) => encode(s, enc).map(Value::Bytes),
            ("decimal.Decimal", [Value::Str(s)]) => Some(Value::Decimal(take(s))),
            ("uuid.UUID", []) => {
                let n: u128 = match self.state.as_ref()?.get("int")? {
                    Value::Int(i) => u128::try_from(*i).ok()?,
                    Value::BigInt(s) => s.parse().ok()?,
                    _ => return None,
                };
                Some(Value::Uuid(format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    n >> 96,
                    (n >> 80) & 0xffff,
                    (n >> 64) & 0xffff,
                    (n >> 48) & 0xffff,
                    n & 0xffff_ffff_ffff
                )))
            }
            ("builtins.set" | "builtins.frozenset", args) => sequence(args, &mut self.items).map(Value::Set),
            ("builtins.list", args) => sequence(args, &mut self.items).map(Value::List),
            ("builtins.tuple", args) => sequence(args, &mut self.items).map(Value::Tuple),
            ("builtins.dict" | "collections.OrderedDict", args) => {
                let mut map = match args {
                    [] => Vec::new(),
                    [Value::Map(m)] => take(m),
                    [Value::List(v) | Value::Tuple(v)] if v.iter().all(is_pair) => {
                        take(v).into_iter().filter_map(into_pair).collect()
                    }
                    _ => return None,
                };
                map.append(&mut self.pairs);
                map.append(&mut self.kwargs);
                Some(Value::Map(map))
            }
            ("builtins.bytes" | "builtins.bytearray", args) => match args {
                [] => Some(Value::Bytes(Vec::new())),
                [Value::Bytes(b)] => Some(Value::Bytes(take(b))),
                [Value::Str(s), Value::Str(enc)] => encode(s, enc).map(Value::Bytes),
                [Value::List(v)] => v
                    .iter()
                    .map(|b| match b {
                        Value::Int(i) => u8::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .map(Value::Bytes),
                _ => None,
            },
            ("builtins.str", []) => Some(Value::Str(String::new())),
            ("builtins.str", [Value::Str(s)]) => Some(Value::Str(take(s))),
            ("builtins.int", []) => Some(Value::Int(0)),
            ("builtins.int", [v @ (Value::Int(_) | Value::BigInt(_))]) => Some(v.clone()),
            ("builtins.int", [Value::Str(s)]) => int_text(s.as_bytes()),
            ("builtins.int", [Value::Bool(b)]) => Some(Value::Int(i64::from(*b))),
            ("builtins.float", []) => Some(Value::Float(0.0)),
            ("builtins.float", [Value::Float(f)]) => Some(Value::Float(*f)),
            ("builtins.float", [Value::Str(s)]) => s.trim().parse().ok().map(Value::Float),
            ("builtins.bool", []) => Some(Value::Bool(false)),
            ("builtins.bool", [Value::Bool(b)]) => Some(Value::Bool(*b)),
            ("builtins.bool", [Value::Int(i)]) => Some(Value::Bool(*i != 0)),
            _ => None,
        }
    }

    /// Items and keyword arguments the object received become extra arguments, after its own.
    fn into_object(self) -> Value {
        let mut args = self.args;
        if !self.kwargs.is_empty() {
            args.push(Value::Map(self.kwargs));
        }
        if !self.items.is_empty() {
            args.push(Value::List(self.items));
        }
        if !self.pairs.is_empty() {
            args.push(Value::Map(self.pairs));
        }
        Value::Object { class: self.class, args, state: self.state.map(Box::new) }
    }
}

/// A datetime or time with its zone, always as ISO 8601 with its offset: `+05:30` for a
/// `datetime.timezone`; for a `ZoneInfo`, the offset the zone has at that local time (from the
/// IANA database compiled in, so the answer does not depend on the machine) followed by the
/// zone's name as RFC 9557 writes it (`2025-07-23T10:15:00+01:00[Africa/Lagos]`). A zone the
/// database does not know, a time of day in a zone (no offset without a date, as in Python),
/// or any other tzinfo keeps the time beside its tzinfo rather than invent an offset.
fn with_zone(
    class: &str,
    text: String,
    tz: &[Value],
    local: Option<(chrono::NaiveDateTime, bool)>,
    wrap: fn(String) -> Value,
) -> Option<Value> {
    let tz = match tz {
        [] | [Value::Null] => return Some(wrap(text)),
        [tz] => tz,
        _ => return None,
    };
    let suffix = match tz {
        Value::Object { class, args, .. } => match (class.as_str(), args.as_slice()) {
            ("datetime.timezone", [offset, ..]) => utc_offset(offset),
            ("zoneinfo.ZoneInfo", [Value::Str(key), ..]) => {
                local.and_then(|(at, fold)| zone_offset(key, at, fold)).map(|offset| format!("{offset}[{key}]"))
            }
            _ => None,
        },
        _ => None,
    };
    Some(match suffix {
        Some(suffix) => wrap(text + &suffix),
        None => Value::Object { class: class.into(), args: vec![wrap(text), tz.clone()], state: None },
    })
}

/// The offset `zone` has at local time `at`, as `+01:00`. `fold` picks the second of two
/// readings of a repeated hour, as Python's `fold=1` does; in a skipped hour the offset before
/// the change applies, as Python's does for `fold=0`.
fn zone_offset(zone: &str, at: chrono::NaiveDateTime, fold: bool) -> Option<String> {
    use chrono::{Offset, TimeZone};
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let seconds = match tz.offset_from_local_datetime(&at) {
        chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
        chrono::LocalResult::Ambiguous(first, second) => if fold { second } else { first }.fix().local_minus_utc(),
        chrono::LocalResult::None => {
            let before = at - chrono::Duration::hours(3);
            tz.offset_from_local_datetime(&before).earliest()?.fix().local_minus_utc()
        }
    };
    let delta = Value::TimeDelta {
        days: i64::from(seconds.div_euclid(86_400)),
        seconds: i64::from(seconds.rem_euclid(86_400)),
        micros: 0,
    };
    utc_offset(&delta)
}

/// Python's `isoformat` offset: `+05:30`, `-08:00`, with seconds and micros only when present.
fn utc_offset(offset: &Value) -> Option<String> {
    let &Value::TimeDelta { days, seconds, micros: us } = offset else {
        return None;
    };
    let total = micros(days, seconds, us);
    if total.abs() >= 86_400_000_000 {
        return None;
    }
    let sign = if total < 0 { '-' } else { '+' };
    let t = total.abs();
    let (s, us) = (t / 1_000_000 % 60, t % 1_000_000);
    let mut out = format!("{sign}{:02}:{:02}", t / 3_600_000_000, t / 60_000_000 % 60);
    if s != 0 || us != 0 {
        let _ = write!(out, ":{s:02}");
    }
    if us != 0 {
        let _ = write!(out, ".{us:06}");
    }
    Some(out)
}

/// A timedelta's parts as microseconds; they are `i64`, so this cannot overflow.
fn micros(days: i64, seconds: i64, micros: i64) -> i128 {
    i128::from(days) * 86_400_000_000 + i128::from(seconds) * 1_000_000 + i128::from(micros)
}

fn date_text(year: u16, month: u8, day: u8) -> Option<String> {
    ((1..=12).contains(&month) && (1..=31).contains(&day) && year >= 1)
        .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

fn time_text(hour: u8, minute: u8, second: u8, micros: u32) -> Option<String> {
    if hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return None;
    }
    let mut out = format!("{hour:02}:{minute:02}:{second:02}");
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    Some(out)
}

/// The packed state of a `datetime`, `date` or `time`: bytes, or text whose code points are the
/// bytes (Python 2 `str` read as Latin-1), or as a last resort the UTF-8 of such text.
fn state_bytes<const N: usize>(v: &Value) -> Option<[u8; N]> {
    match v {
        Value::Bytes(b) => b.as_slice().try_into().ok(),
        Value::Str(s) => latin1(s).and_then(|b| b.try_into().ok()).or_else(|| s.as_bytes().try_into().ok()),
        _ => None,
    }
}

fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c).ok()).collect()
}

/// `_codecs.encode(text, encoding)`, which protocols 0-2 use to pickle Python 3 bytes.
fn encode(s: &str, encoding: &str) -> Option<Vec<u8>> {
    match encoding.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "latin1" | "iso88591" | "l1" => latin1(s),
        "utf8" => Some(s.as_bytes().to_vec()),
        "ascii" if s.is_ascii() => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// The elements for `set(x)`, `list(x)`, `tuple(x)`, followed by appended items.
fn sequence(args: &mut [Value], items: &mut Vec<Value>) -> Option<Vec<Value>> {
    let mut out = match args {
        [] => Vec::new(),
        [Value::List(v) | Value::Tuple(v) | Value::Set(v)] => std::mem::take(v),
        _ => return None,
    };
    out.append(items);
    Some(out)
}

fn is_pair(v: &Value) -> bool {
    matches!(v, Value::List(p) | Value::Tuple(p) if p.len() == 2)
}

fn into_pair(v: Value) -> Option<(Value, Value)> {
    match v {
        Value::List(p) | Value::Tuple(p) => {
            let mut p = p.into_iter();
            Some((p.next()?, p.next()?))
        }
        _ => None,
    }
}

fn int_value(n: &BigInt) -> Value {
    i64::try_from(n).map_or_else(|_| Value::BigInt(n.to_string()), Value::Int)
}

/// A decimal integer as protocol 0 writes it; `None` when it is not one or is too long.
fn int_text(text: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(text).ok()?.trim();
    if text.len() > MAX_LONG_DIGITS + 1 {
        return None;
    }
    if let Ok(n) = text.parse() {
        return Some(Value::Int(n));
    }
    BigInt::parse_bytes(text.as_bytes(), 10).map(|n| int_value(&n))
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| acc.checked_mul(16)?.checked_add(char::from(d).to_digit(16)?))
}

/// Undoes the escapes of a Python 2 `repr` (the `STRING` opcode); unknown escapes stay as written.
fn unescape_py2(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some((&e, tail)) = rest.split_first() else {
            out.push(b'\\');
            break;
        };
        rest = tail;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut n = u32::from(e - b'0');
                for _ in 0..2 {
                    let Some((&d @ b'0'..=b'7', tail)) = rest.split_first() else {
                        break;
                    };
                    n = n * 8 + u32::from(d - b'0');
                    rest = tail;
                }
                out.push((n & 0xff) as u8);
            }
            b'x' => match rest.get(..2).and_then(hex_value) {
                Some(v) => {
                    out.push((v & 0xff) as u8);
                    rest = rest.get(2..).unwrap_or_default();
                }
                None => out.extend_from_slice(b"\\x"),
            },
            _ => out.extend_from_slice(&[b'\\', e]),
        }
    }
    out
}

/// Python's `raw-unicode-escape` (the `UNICODE` opcode): bytes are Latin-1 code points, except
/// `\uXXXX` and `\UXXXXXXXX` after an odd run of backslashes. Lone surrogates become U+FFFD.
fn raw_unicode_escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(char::from(b));
            continue;
        }
        let mut run = 1;
        while s.get(i) == Some(&b'\\') {
            run += 1;
            i += 1;
        }
        let width = match s.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => 0,
        };
        let code = s.get(i + 1..i + 1 + width).filter(|_| width > 0).and_then(hex_value);
        match code {
            Some(code) => {
                out.extend(std::iter::repeat_n('\\', run - 1));
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                i += 1 + width;
            }
            None => out.extend(std::iter::repeat_n('\\', run)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = include_str!("../../tests/data/flask-session-payloads.txt");

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u32> = s.chars().map(|c| c.to_digit(16).unwrap()).collect();
        digits.chunks(2).map(|p| (p[0] * 16 + p[1]) as u8).collect()
    }

    fn sample(name: &str) -> Vec<u8> {
        let line = SAMPLES
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix('='))
            .unwrap_or_else(|| panic!("no sample {name}"));
        hex(line.trim())
    }

    fn samples() -> Vec<Vec<u8>> {
        SAMPLES
            .lines()
            .filter(|l| l.starts_with("pickle_"))
            .filter_map(|l| l.split_once('='))
            .map(|(_, h)| hex(h.trim()))
            .collect()
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
    }

    fn ints(values: &[i64]) -> Value {
        Value::List(values.iter().copied().map(Value::Int).collect())
    }

    fn err(bytes: &[u8]) -> String {
        decode(bytes).unwrap_err().0
    }

    #[test]
    fn full_session_from_flask_session_0_6_0() {
        let expected = map(vec![
            ("_permanent", Value::Bool(true)),
            ("user_id", Value::Int(42)),
            ("name", s("Zoë")),
            (
                "nested",
                map(vec![
                    ("roles", Value::List(vec![s("admin"), s("ops")])),
                    (
                        "prefs",
                        map(vec![
                            ("theme", s("dark")),
                            ("n", Value::Float(3.5)),
                            ("ok", Value::Bool(true)),
                            ("none", Value::Null),
                        ]),
                    ),
                ]),
            ),
            ("cart", Value::List(vec![Value::Int(1), s("two"), ints(&[3, 4]), map(vec![("five", Value::Int(5))])])),
            ("login_at", Value::DateTime("2024-05-17T12:34:56.789000".into())),
            ("login_at_utc", Value::DateTime("2024-05-17T12:34:56.789000+00:00".into())),
            ("big", Value::Int(1 << 40)),
            ("neg", Value::Int(-7)),
            ("raw", Value::Bytes(b"\x00\x01bytes".to_vec())),
            ("tup", Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
        ]);
        assert_eq!(decode(&sample("pickle_p4_full_0.6.0")).unwrap(), expected);
    }

    #[test]
    fn flashes_from_flask_session_0_5_0() {
        let expected = map(vec![
            ("_permanent", Value::Bool(true)),
            ("user_id", Value::Int(42)),
            ("name", s("Zoë")),
            ("_flashes", Value::List(vec![Value::Tuple(vec![s("info"), s("Saved!")])])),
        ]);
        assert_eq!(decode(&sample("pickle_p4_flash_0.5.0")).unwrap(), expected);
    }

    #[test]
    fn datetime_in_every_protocol() {
        let expected =
            map(vec![("user_id", Value::Int(42)), ("when", Value::DateTime("2024-05-17T12:34:56.789000".into()))]);
        for name in ["pickle_p0_datetime", "pickle_p2_datetime", "pickle_p3_datetime", "pickle_p5_datetime"] {
            assert_eq!(decode(&sample(name)).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn zoneinfo_datetime_has_its_offset_and_its_zone_name() {
        let expected = map(vec![("t", Value::DateTime("2024-05-17T12:34:56+02:00[Europe/Berlin]".into()))]);
        assert_eq!(decode(&sample("pickle_p4_zoneinfo")).unwrap(), expected);
        let at = |h| chrono::NaiveDate::from_ymd_opt(2025, 7, 23).unwrap().and_hms_opt(h, 15, 0).unwrap();
        assert_eq!(zone_offset("Africa/Lagos", at(10), false).as_deref(), Some("+01:00"));
        assert_eq!(zone_offset("Asia/Kolkata", at(10), false).as_deref(), Some("+05:30"));
        assert_eq!(zone_offset("America/New_York", at(10), false).as_deref(), Some("-04:00"));
        // 2024-11-03 01:30 happens twice in New York; fold picks the second.
        let twice = chrono::NaiveDate::from_ymd_opt(2024, 11, 3).unwrap().and_hms_opt(1, 30, 0).unwrap();
        assert_eq!(zone_offset("America/New_York", twice, false).as_deref(), Some("-04:00"));
        assert_eq!(zone_offset("America/New_York", twice, true).as_deref(), Some("-05:00"));
        assert_eq!(zone_offset("Mars/Olympus_Mons", at(10), false), None);
    }

    #[test]
    fn misc_standard_types() {
        let expected = map(vec![
            ("d", Value::Date("2024-05-17".into())),
            ("td", Value::TimeDelta { days: 0, seconds: 90, micros: 0 }),
            ("dec", Value::Decimal("1.50".into())),
            ("u", Value::Uuid("00000000-0000-0000-0000-000000000001".into())),
            ("s", Value::Set(vec![Value::Int(1), Value::Int(2)])),
            ("m", Value::Object { class: "markupsafe.Markup".into(), args: vec![s("<b>x</b>")], state: None }),
        ]);
        assert_eq!(decode(&sample("pickle_p4_misc_types")).unwrap(), expected);
    }

    #[test]
    fn plain_class_is_an_object_with_its_state() {
        let cart = Value::Object {
            class: "__main__.Cart".into(),
            args: vec![],
            state: Some(Box::new(map(vec![("items", ints(&[1, 2]))]))),
        };
        let decoded = decode(&sample("pickle_p4_plain_class")).unwrap();
        assert_eq!(decoded, map(vec![("cart", cart.clone())]));
        assert_eq!(cart.inline(200), "<__main__.Cart items=[1, 2]>");
        assert_eq!(decoded.get("cart").unwrap().inline(200), "<__main__.Cart items=[1, 2]>");
    }

    #[test]
    fn protocol_0_text_opcodes() {
        // pickle.dumps([True, False, 7, 2**70, 1.5], 0) plus a Python 2 STRING and a UNICODE.
        let v = decode(b"(lp0\nI01\naI00\naI7\naL1180591620717411303424L\naF1.5\naS'x\\n\\x41\\101'\naVcaf\xe9 \\u005c \\u000a\na.")
            .unwrap();
        let expected = Value::List(vec![
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(7),
            Value::BigInt("1180591620717411303424".into()),
            Value::Float(1.5),
            s("x\nAA"),
            s("café \\ \n"),
        ]);
        assert_eq!(v, expected);
        assert_eq!(decode(b"L123L\n.").unwrap(), Value::Int(123));
        assert_eq!(decode(b"S'\\xff'\n.").unwrap(), Value::Bytes(vec![0xff]));
        assert_eq!(decode(b"(dp0\nS'k'\np1\nNs.").unwrap(), Value::Map(vec![(s("k"), Value::Null)]));
    }

    #[test]
    fn long1_big_and_negative() {
        assert_eq!(
            decode(b"\x80\x02\x8a\x09\0\0\0\0\0\0\0\0\x40.").unwrap(),
            Value::BigInt("1180591620717411303424".into())
        );
        assert_eq!(
            decode(b"\x80\x02\x8a\x09\0\0\0\0\0\0\0\0\xc0.").unwrap(),
            Value::BigInt("-1180591620717411303424".into())
        );
        assert_eq!(decode(b"\x80\x02\x8a\x01\xff.").unwrap(), Value::Int(-1));
        assert_eq!(decode(b"\x80\x02\x8a\x00.").unwrap(), Value::Int(0));
        assert_eq!(decode(b"\x80\x04\x8b\x02\x00\x00\x00\x00\x01.").unwrap(), Value::Int(256));
        assert!(err(b"\x80\x04\x8b\x00\x00\x01\x00.").contains("longer than 4096"));
    }

    #[test]
    fn dup_and_pop_mark() {
        assert_eq!(decode(b"\x80\x02K\x052\x86.").unwrap(), Value::Tuple(vec![Value::Int(5), Value::Int(5)]));
        assert_eq!(decode(b"\x80\x02K\x01(K\x02K\x031.").unwrap(), Value::Int(1));
        // POP right at a mark drops the mark, as CPython does.
        assert_eq!(decode(b"\x80\x02K\x01(0.").unwrap(), Value::Int(1));
    }

    #[test]
    fn shared_containers_are_filled_after_being_referenced() {
        // [d, d] where d is memoized empty, appended twice, and only then filled with {'k': 1}.
        let v = decode(b"\x80\x04]\x94(}\x94h\x01eh\x01\x8c\x01kK\x01s0.").unwrap();
        let d = map(vec![("k", Value::Int(1))]);
        assert_eq!(v, Value::List(vec![d.clone(), d]));
    }

    #[test]
    fn recursive_list_is_cut() {
        let v = decode(b"\x80\x02]q\x00h\x00a.").unwrap();
        assert_eq!(v, Value::List(vec![s(RECURSIVE)]));
        // A dict holding itself under two keys, inside a list: the cycle is cut, the list is not.
        let v = decode(b"\x80\x02](}q\x00(K\x01h\x00K\x02h\x00ue.").unwrap();
        let d = Value::Map(vec![(Value::Int(1), s(RECURSIVE)), (Value::Int(2), s(RECURSIVE))]);
        assert_eq!(v, Value::List(vec![d]));
    }

    #[test]
    fn billion_laughs_is_refused() {
        // Ten levels, each a list holding the previous level ten times: 10^10 values expanded.
        let mut p = b"\x80\x04](K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01e\x94".to_vec();
        for level in 0..10u8 {
            p.extend_from_slice(b"](");
            for _ in 0..10 {
                p.extend_from_slice(&[b'h', level]);
            }
            p.extend_from_slice(b"e\x94");
        }
        p.push(b'.');
        let e = err(&p);
        assert!(e.contains("more than 1000000 values"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut p = vec![b']'; 300];
        p.extend(vec![b'a'; 299]);
        p.push(b'.');
        assert_eq!(err(&p), "nesting deeper than 200");
        let mut p = vec![b']'; 150];
        p.extend(vec![b'a'; 149]);
        p.push(b'.');
        assert!(decode(&p).is_ok());
    }

    #[test]
    fn python2_names_and_older_protocol_forms() {
        // pickle.dumps({1, 2}, 2), OrderedDict(a=1), b'', bytearray(b'ab') and a protocol 0 instance.
        let set = decode(b"\x80\x02c__builtin__\nset\nq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03.").unwrap();
        assert_eq!(set, Value::Set(vec![Value::Int(1), Value::Int(2)]));
        let od = decode(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aq\x02K\x01s.").unwrap();
        assert_eq!(od, map(vec![("a", Value::Int(1))]));
        assert_eq!(decode(b"\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.").unwrap(), Value::Bytes(vec![]));
        let ba = b"\x80\x02c__builtin__\nbytearray\nq\x00c_codecs\nencode\nq\x01X\x02\x00\x00\x00abq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05\x85q\x06Rq\x07.";
        assert_eq!(decode(ba).unwrap(), Value::Bytes(b"ab".to_vec()));
        let cart = b"ccopy_reg\n_reconstructor\np0\n(c__main__\nCart\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nVitems\np6\n(lp7\nI1\naI2\nasb.";
        assert_eq!(decode(cart).unwrap().inline(100), "<__main__.Cart items=[1, 2]>");
    }

    #[test]
    fn times_with_fold_and_fixed_offsets() {
        // datetime(2024, 5, 17, 1, 2, 3, tzinfo=timezone(timedelta(hours=5, minutes=30))), protocol 4.
        let dt = b"\x80\x04\x95X\x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\n\x07\xe8\x05\x11\x01\x02\x03\x00\x00\x00\x94h\x00\x8c\x08timezone\x94\x93\x94h\x00\x8c\ttimedelta\x94\x93\x94K\x00MXMK\x00\x87\x94R\x94\x85\x94R\x94\x86\x94R\x94.";
        assert_eq!(decode(dt).unwrap(), Value::DateTime("2024-05-17T01:02:03+05:30".into()));
        // time(1, 2, 3, 4, fold=1, tzinfo=timezone(timedelta(hours=-8))), protocol 4.
        let t = b"\x80\x04\x95S\x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x04time\x94\x93\x94C\x06\x81\x02\x03\x00\x00\x04\x94h\x00\x8c\x08timezone\x94\x93\x94h\x00\x8c\ttimedelta\x94\x93\x94J\xff\xff\xff\xffM\x00\xe1K\x00\x87\x94R\x94\x85\x94R\x94\x86\x94R\x94.";
        assert_eq!(decode(t).unwrap(), Value::Time("01:02:03.000004-08:00".into()));
        // An unknown tzinfo keeps the time beside it instead of passing it off as naive.
        let odd = b"\x80\x04\x8c\x08datetime\x8c\x08datetime\x93C\n\x07\xe8\x05\x11\x01\x02\x03\x00\x00\x00\x8c\x04pytz\x8c\x04_UTC\x93)R\x86R.";
        assert_eq!(decode(odd).unwrap().inline(100), "<datetime.datetime 2024-05-17T01:02:03 <pytz._UTC>>");
    }

    #[test]
    fn truncated_inputs_fail_cleanly() {
        assert_eq!(err(b"\x80\x04X\x2c\x01\x00\x00abc"), "truncated at byte 2 (BINUNICODE needs 300 bytes)");
        assert_eq!(err(b"\x80\x04K"), "truncated at byte 2 (BININT1 needs 1 bytes)");
        assert_eq!(err(b"\x80\x04N"), "truncated at byte 3 (no STOP)");
        assert_eq!(err(b"I42"), "truncated at byte 0 (INT needs a newline)");
        assert_eq!(
            err(b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff."),
            "truncated at byte 2 (BINBYTES8 needs 18446744073709551615 bytes)"
        );
        assert_eq!(err(b""), "truncated at byte 0 (no STOP)");
        let full = sample("pickle_p4_full_0.6.0");
        for len in 0..full.len() {
            assert!(decode(&full[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn code_loading_opcodes_are_refused() {
        assert_eq!(err(b"Pabc\n."), "unsupported opcode PERSID at byte 0 (needs the application's persistent_load)");
        assert!(err(b"\x80\x02K\x01Q.").starts_with("unsupported opcode BINPERSID at byte 4"));
        assert!(err(b"\x80\x02\x82\x01.").starts_with("unsupported opcode EXT1 at byte 2"));
        assert!(err(b"\x80\x05\x97.").starts_with("unsupported opcode NEXT_BUFFER"));
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(err(b"\x80\x04\xff."), "unknown opcode 0xff at byte 2");
        assert_eq!(err(b"\x80\x04(u."), "stack underflow at byte 3 (SETITEMS)");
        assert_eq!(err(b"N.x"), "trailing bytes after STOP at byte 1");
        assert_eq!(err(b"\x80\x06N."), "unsupported protocol 6 at byte 0 (PROTO)");
        assert_eq!(err(b"h\x05."), "memo key 5 missing at byte 0 (BINGET)");
        assert_eq!(err(b"]K\x01K\x02\x86R."), "cannot call a list at byte 6 (REDUCE)");
        assert_eq!(err(b")K\x01a."), "cannot add items to a tuple at byte 3 (APPEND)");
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0x5e55_1017);
        let opcodes: Vec<u8> = (0..=255).filter(|&c| opcode_name(c).is_some()).collect();
        for _ in 0..4000 {
            let len = rng.usize(0..64);
            let mut p: Vec<u8> = if rng.bool() { vec![0x80, rng.u8(0..6)] } else { Vec::new() };
            for _ in 0..len {
                p.push(if rng.u8(..) < 160 { opcodes[rng.usize(..opcodes.len())] } else { rng.u8(..) });
            }
            if rng.bool() {
                p.push(b'.');
            }
            let _ = decode(&p);
        }
        for original in samples() {
            for _ in 0..400 {
                let mut p = original.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..p.len().max(1));
                    match rng.u8(0..5) {
                        0 if at < p.len() => p[at] = rng.u8(..),
                        1 if at < p.len() => p[at] ^= 1 << rng.u8(0..8),
                        2 => p.insert(at.min(p.len()), rng.u8(..)),
                        3 if at < p.len() => drop(p.remove(at)),
                        _ => p.truncate(at),
                    }
                }
                let _ = decode(&p);
            }
        }
    }
}
