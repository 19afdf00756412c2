//! Pickle opcode bytes: the ones the interpreter runs, and the name of every opcode of protocols
//! 0-5 so that a refused one is named in the error.

/// `\x80` PROTO: protocol version (1 byte).
pub const PROTO: u8 = 0x80;
/// `\x95` FRAME: length of the next frame (8 bytes), protocol 4.
pub const FRAME: u8 = 0x95;
/// `.` STOP: the pickle ends; the top of the stack is the result.
pub const STOP: u8 = b'.';
/// `}` EMPTY_DICT.
pub const EMPTY_DICT: u8 = b'}';
/// `]` EMPTY_LIST.
pub const EMPTY_LIST: u8 = b']';
/// `)` EMPTY_TUPLE.
pub const EMPTY_TUPLE: u8 = b')';
/// `(` MARK.
pub const MARK: u8 = b'(';
/// `t` TUPLE: the items above the last mark.
pub const TUPLE: u8 = b't';
/// `\x85` TUPLE1.
pub const TUPLE1: u8 = 0x85;
/// `\x86` TUPLE2.
pub const TUPLE2: u8 = 0x86;
/// `\x87` TUPLE3.
pub const TUPLE3: u8 = 0x87;
/// `s` SETITEM.
pub const SETITEM: u8 = b's';
/// `u` SETITEMS.
pub const SETITEMS: u8 = b'u';
/// `a` APPEND.
pub const APPEND: u8 = b'a';
/// `e` APPENDS.
pub const APPENDS: u8 = b'e';
/// `q` BINPUT (1-byte memo index).
pub const BINPUT: u8 = b'q';
/// `r` LONG_BINPUT (4-byte memo index).
pub const LONG_BINPUT: u8 = b'r';
/// `\x94` MEMOIZE (protocol 4).
pub const MEMOIZE: u8 = 0x94;
/// `h` BINGET.
pub const BINGET: u8 = b'h';
/// `j` LONG_BINGET.
pub const LONG_BINGET: u8 = b'j';
/// `K` BININT1.
pub const BININT1: u8 = b'K';
/// `M` BININT2.
pub const BININT2: u8 = b'M';
/// `J` BININT (signed 4 bytes).
pub const BININT: u8 = b'J';
/// `\x8a` LONG1 (1-byte length, little-endian two's complement).
pub const LONG1: u8 = 0x8a;
/// `G` BINFLOAT (big-endian f64).
pub const BINFLOAT: u8 = b'G';
/// `N` NONE.
pub const NONE: u8 = b'N';
/// `\x88` NEWTRUE.
pub const NEWTRUE: u8 = 0x88;
/// `\x89` NEWFALSE.
pub const NEWFALSE: u8 = 0x89;
/// `X` BINUNICODE (4-byte length, UTF-8).
pub const BINUNICODE: u8 = b'X';
/// `\x8c` SHORT_BINUNICODE (1-byte length).
pub const SHORT_BINUNICODE: u8 = 0x8c;
/// `\x8d` BINUNICODE8 (8-byte length).
pub const BINUNICODE8: u8 = 0x8d;
/// `C` SHORT_BINBYTES (1-byte length).
pub const SHORT_BINBYTES: u8 = b'C';
/// `B` BINBYTES (4-byte length).
pub const BINBYTES: u8 = b'B';
/// `\x8e` BINBYTES8 (8-byte length).
pub const BINBYTES8: u8 = 0x8e;
/// `c` GLOBAL: `module\nname\n`.
pub const GLOBAL: u8 = b'c';
/// `\x93` STACK_GLOBAL: module and name from the stack.
pub const STACK_GLOBAL: u8 = 0x93;
/// `R` REDUCE: call a global with an argument tuple (here: only allow-listed constructors,
/// interpreted, never run).
pub const REDUCE: u8 = b'R';
/// `b` BUILD: set the state of the object below.
pub const BUILD: u8 = b'b';

/// The name of pickle opcode `op` (`None` for a byte that is no opcode).
pub fn name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'2' => "DUP",
        b'1' => "POP_MARK",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// `NAME (0xNN)` for an error message.
pub fn describe(op: u8) -> String {
    match name(op) {
        Some(n) => format!("opcode {n} (0x{op:02x})"),
        None => format!("byte 0x{op:02x}, which is no pickle opcode"),
    }
}
