//! Typed reads from a YAML tree with line numbers (saphyr's `MarkedYaml`), each failure an
//! error naming the file, the line, the resource and the field.

use std::path::Path;
use std::time::Duration;

use saphyr::{AnnotatedMapping, LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::{duration, CheckError};

pub(crate) type Node<'input> = MarkedYaml<'input>;

/// Every document of a file; a syntax error names the file, line and column.
pub(crate) fn load<'input>(
    file: &Path,
    text: &'input str,
) -> Result<Vec<Node<'input>>, CheckError> {
    MarkedYaml::load_from_str(text).map_err(|e| CheckError::Yaml {
        file: file.to_path_buf(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    })
}

pub(crate) fn line(node: &Node<'_>) -> usize {
    node.span.start.line()
}

/// The node under a tag (`!!str 5s`), or the node itself.
fn untagged<'a, 'input>(node: &'a Node<'input>) -> &'a Node<'input> {
    match &node.data {
        YamlData::Tagged(_, inner) => untagged(inner),
        _ => node,
    }
}

fn is_null(node: &Node<'_>) -> bool {
    matches!(&untagged(node).data, YamlData::Value(Scalar::Null))
}

pub(crate) fn is_map(node: &Node<'_>) -> bool {
    matches!(&untagged(node).data, YamlData::Mapping(_))
}

fn scalar_str<'a>(node: &'a Node<'_>) -> Option<&'a str> {
    match &untagged(node).data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        YamlData::Representation(s, _, _) => Some(s),
        _ => None,
    }
}

fn describe(node: &Node<'_>) -> &'static str {
    match &untagged(node).data {
        YamlData::Value(Scalar::Null) => "null",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        _ => "an unreadable value",
    }
}

/// Reads the fields of one resource, naming it in every error.
pub(crate) struct Reader<'a> {
    pub(crate) file: &'a Path,
    pub(crate) resource: String,
}

impl Reader<'_> {
    pub(crate) fn error(
        &self,
        node: &Node<'_>,
        field: &str,
        message: impl Into<String>,
    ) -> CheckError {
        CheckError::Invalid {
            file: self.file.to_path_buf(),
            line: line(node),
            resource: self.resource.clone(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn expected(&self, node: &Node<'_>, field: &str, what: &str) -> CheckError {
        self.error(
            node,
            field,
            format!("expected {what}, found {}", describe(node)),
        )
    }

    pub(crate) fn map<'a, 'input>(
        &self,
        node: &'a Node<'input>,
        field: &str,
    ) -> Result<&'a AnnotatedMapping<'input, Node<'input>>, CheckError> {
        match &untagged(node).data {
            YamlData::Mapping(m) => Ok(m),
            _ => Err(self.expected(node, field, "a mapping")),
        }
    }

    /// The value under `key` in the mapping `node` (at `field`); `None` when absent or null.
    pub(crate) fn get<'a, 'input>(
        &self,
        node: &'a Node<'input>,
        field: &str,
        key: &str,
    ) -> Result<Option<&'a Node<'input>>, CheckError> {
        let map = self.map(node, field)?;
        Ok(map
            .iter()
            .find(|(k, _)| scalar_str(k) == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !is_null(v)))
    }

    /// The keys of the mapping `node`, in order.
    pub(crate) fn keys<'a>(
        &self,
        node: &'a Node<'_>,
        field: &str,
    ) -> Result<Vec<&'a str>, CheckError> {
        Ok(self
            .map(node, field)?
            .iter()
            .filter_map(|(k, _)| scalar_str(k))
            .collect())
    }

    pub(crate) fn seq<'a, 'input>(
        &self,
        node: &'a Node<'input>,
        field: &str,
    ) -> Result<&'a [Node<'input>], CheckError> {
        match &untagged(node).data {
            YamlData::Sequence(s) => Ok(s),
            _ => Err(self.expected(node, field, "a list")),
        }
    }

    pub(crate) fn str<'a>(&self, node: &'a Node<'_>, field: &str) -> Result<&'a str, CheckError> {
        scalar_str(node).ok_or_else(|| self.expected(node, field, "a string"))
    }

    /// An integer, also when written as a string (protobuf's JSON mapping accepts `"3"`).
    pub(crate) fn int(&self, node: &Node<'_>, field: &str) -> Result<i64, CheckError> {
        match &untagged(node).data {
            YamlData::Value(Scalar::Integer(i)) => Ok(*i),
            _ => scalar_str(node)
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| self.expected(node, field, "an integer")),
        }
    }

    /// A non-negative integer that fits in 32 bits.
    pub(crate) fn uint(&self, node: &Node<'_>, field: &str) -> Result<u32, CheckError> {
        let value = self.int(node, field)?;
        u32::try_from(value).map_err(|_| {
            self.error(
                node,
                field,
                format!("expected a count from 0 to {}, found {value}", u32::MAX),
            )
        })
    }

    pub(crate) fn bool(&self, node: &Node<'_>, field: &str) -> Result<bool, CheckError> {
        match &untagged(node).data {
            YamlData::Value(Scalar::Boolean(b)) => Ok(*b),
            _ => Err(self.expected(node, field, "true or false")),
        }
    }

    /// An Istio duration (`5s`, `250ms`, `1m30s`, `1.5s`).
    pub(crate) fn duration(&self, node: &Node<'_>, field: &str) -> Result<Duration, CheckError> {
        let text = self.str(node, field)?;
        duration::parse(text).map_err(|e| self.error(node, field, e.to_string()))
    }
}
