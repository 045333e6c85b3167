//! Whole numbers a client sent with a zero fraction (`273.0`): JSON Schema counts them as
//! integers, so the API takes them wherever it takes an integer. Used as
//! `#[serde(deserialize_with = "vulcan_domain::whole::int")]`, or `whole::opt` for an
//! `Option` (with `default`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

struct Whole<T>(PhantomData<T>);

impl<T> Whole<T>
where
    T: TryFrom<i128>,
{
    fn fit<E: de::Error>(n: i128) -> Result<T, E> {
        T::try_from(n).map_err(|_| {
            E::invalid_value(
                de::Unexpected::Other(&n.to_string()),
                &"a whole number in the field's range",
            )
        })
    }
}

impl<T: TryFrom<i128>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::fit(n.into())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        Self::fit(n.into())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<T, E> {
        // Every f64 past 2^63 is whole, and out of every field's range anyway.
        if n.fract() != 0.0 || !n.is_finite() || n.abs() > 9.3e18 {
            return Err(E::invalid_type(de::Unexpected::Float(n), &self));
        }
        Self::fit(n as i128)
    }
}

/// An integer field that also takes `273.0`.
pub fn int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Whole(PhantomData))
}

struct Maybe<T>(PhantomData<T>);

impl<'de, T: TryFrom<i128>> Visitor<'de> for Maybe<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        int(d).map(Some)
    }
}

/// An optional integer field (`null` or absent is `None`) that also takes `273.0`.
pub fn opt<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_option(Maybe(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::int")]
        n: u32,
        #[serde(default, deserialize_with = "super::opt")]
        m: Option<u64>,
    }

    fn parse(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_taken_in_either_spelling_and_nothing_else_is() {
        assert_eq!(parse(r#"{"n": 273}"#), Ok(Body { n: 273, m: None }));
        assert_eq!(
            parse(r#"{"n": 273.0, "m": 5.0}"#),
            Ok(Body { n: 273, m: Some(5) })
        );
        assert_eq!(parse(r#"{"n": 1, "m": null}"#), Ok(Body { n: 1, m: None }));
        for bad in [
            r#"{"n": 2.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "7"}"#,
            r#"{"n": 1, "m": -3.0}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was taken");
        }
    }
}
