//! The JOSE header, read for `alg` and `kid` only, without building a map of it.
//!
//! Accepts and refuses exactly what parsing the header into a `serde_json::Map` and reading
//! those two members did: the header must be one JSON object; every other member is parsed and
//! validated as JSON (`deserialize_any`, as `Value` does: UTF-8, escapes, numbers, nesting
//! limit) and then dropped; of a repeated member the last one counts, as a map keeps the last.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What the header says about `alg` and `kid`.
#[derive(Debug, Default, PartialEq)]
pub struct JoseHeader<'a> {
    pub alg: Option<Member<'a>>,
    pub kid: Option<Member<'a>>,
}

/// One header member's value: text, `null`, or anything else.
#[derive(Debug, PartialEq)]
pub enum Member<'a> {
    Null,
    Text(Cow<'a, str>),
    Other,
}

impl<'a> JoseHeader<'a> {
    /// Parse a decoded header; `None` if it is not a JSON object.
    pub fn parse(json: &'a [u8]) -> Option<JoseHeader<'a>> {
        serde_json::from_slice(json).ok()
    }
}

// === impl JoseHeader: Deserialize ===

impl<'de> Deserialize<'de> for JoseHeader<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = JoseHeader<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut header = JoseHeader::default();
        while let Some(name) = map.next_key::<Member<'de>>()? {
            match name {
                Member::Text(name) if name == "alg" => header.alg = Some(map.next_value()?),
                Member::Text(name) if name == "kid" => header.kid = Some(map.next_value()?),
                _ => {
                    map.next_value::<AnyJson>()?;
                }
            }
        }
        Ok(header)
    }
}

// === impl Member: Deserialize ===

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Member::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Member::Text(Cow::Owned(text.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Member::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Member::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Member::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Member::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Member::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        AnyJsonVisitor.visit_seq(seq).map(|_| Member::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        AnyJsonVisitor.visit_map(map).map(|_| Member::Other)
    }
}

// === impl AnyJson ===

/// Any JSON value, parsed (and so validated) as `serde_json::Value` would be, then dropped.
/// Unlike `serde::de::IgnoredAny`, whose strings serde_json skips without checking escapes.
struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyJsonVisitor)
    }
}

struct AnyJsonVisitor;

impl<'de> Visitor<'de> for AnyJsonVisitor {
    type Value = AnyJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(AnyJson)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(AnyJson)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(AnyJson)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(AnyJson)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(AnyJson)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(AnyJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<AnyJson, AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
}
