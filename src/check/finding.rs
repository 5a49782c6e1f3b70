//! What the checker reports: findings as values, and the report that prints them.

use std::fmt;
use std::path::{Path, PathBuf};

/// The rules the checker applies; each is described in the [module docs](super#the-rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    /// Retries in code on top of retries in the mesh.
    StackedRetries,
    /// `perTryTimeout × tries` beyond the route timeout.
    PerTryTimeoutOverrun,
    /// A timeout in code that is not above the mesh's.
    CodeTimeoutNotAboveMesh,
    /// Retries after the upstream saw a non-idempotent request.
    RetryNonIdempotent,
    /// Outlier detection that can eject every host.
    OutlierEjectsAllHosts,
}

impl Rule {
    /// Every rule, in the order the module docs list them.
    pub const ALL: [Rule; 5] = [
        Rule::StackedRetries,
        Rule::PerTryTimeoutOverrun,
        Rule::CodeTimeoutNotAboveMesh,
        Rule::RetryNonIdempotent,
        Rule::OutlierEjectsAllHosts,
    ];

    /// The rule's stable name, as printed.
    pub fn id(&self) -> &'static str {
        match self {
            Rule::StackedRetries => "stacked-retries",
            Rule::PerTryTimeoutOverrun => "per-try-timeout-overrun",
            Rule::CodeTimeoutNotAboveMesh => "code-timeout-not-above-mesh",
            Rule::RetryNonIdempotent => "retry-non-idempotent",
            Rule::OutlierEjectsAllHosts => "outlier-ejects-all-hosts",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The kind of resource a finding points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// An Istio `VirtualService`.
    VirtualService,
    /// An Istio `DestinationRule`.
    DestinationRule,
    /// A call in the client-settings file (`[calls.NAME]`).
    ClientCall,
}

impl Kind {
    /// The name as printed (`VirtualService`, `DestinationRule`, `ClientCall`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ClientCall => "ClientCall",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource: kind, namespace and name. For a [`Kind::ClientCall`] the namespace is the
/// app's and the name is the call's key in the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Resource {
    /// The kind.
    pub kind: Kind,
    /// `metadata.namespace` (`default` when unset, as `kubectl apply` without `-n`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl Resource {
    pub(crate) fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Resource {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A place in an input file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Location {
    /// The file, as it was given to the checker.
    pub file: PathBuf,
    /// 1-based line: the field's own line, or its nearest parent's when the field is unset
    /// (a default applies).
    pub line: usize,
}

impl Location {
    pub(crate) fn new(file: &Path, line: usize) -> Self {
        Location {
            file: file.to_path_buf(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The app-side setting a finding involves: a call in the client-settings file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct ClientRef {
    /// The call's key (`[calls.NAME]`).
    pub call: String,
    /// The field, like `calls.reviews.retries`.
    pub field: String,
    /// Where it is.
    pub location: Location,
}

/// One problem found: which rule, where, and why.
///
/// `field` is the path of the field to change, like `spec.http[0].retries.attempts`, even
/// when that field is unset and a default applies (the message says so, and `location`
/// points at the nearest enclosing field that is written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The resource the field belongs to.
    pub resource: Resource,
    /// The field path inside the resource.
    pub field: String,
    /// Where the field (or its nearest written parent) is.
    pub location: Location,
    /// What is wrong, with the numbers.
    pub message: String,
    /// The client-settings call involved, for rules that compare code with mesh.
    pub client: Option<ClientRef>,
}

impl Finding {
    fn sort_key(&self) -> impl Ord + '_ {
        (
            &self.location,
            self.rule,
            &self.resource,
            &self.field,
            &self.client,
            &self.message,
        )
    }
}

impl fmt::Display for Finding {
    /// Two or three lines:
    ///
    /// ```text
    /// FILE:LINE: RULE: KIND NAMESPACE/NAME FIELD
    ///     MESSAGE
    ///     app: FIELD at FILE:LINE
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {} {}\n    {}",
            self.location, self.rule, self.resource, self.field, self.message
        )?;
        if let Some(client) = &self.client {
            write!(f, "\n    app: {} at {}", client.field, client.location)?;
        }
        Ok(())
    }
}

/// How many resources of each kind a check read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checked {
    /// Input files.
    pub files: usize,
    /// `VirtualService` resources.
    pub virtual_services: usize,
    /// `DestinationRule` resources.
    pub destination_rules: usize,
    /// Calls in client-settings files.
    pub client_calls: usize,
}

/// The result of a check: every finding, in a stable order (file, line, rule, resource,
/// field), and what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The findings, sorted.
    pub findings: Vec<Finding>,
    /// What was read.
    pub checked: Checked,
}

impl Report {
    pub(crate) fn new(mut findings: Vec<Finding>, checked: Checked) -> Self {
        findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        findings.dedup();
        Report { findings, checked }
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for Report {
    /// Each finding followed by a blank line, then one summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}\n")?;
        }
        let c = &self.checked;
        let n = self.findings.len();
        write!(
            f,
            "{} {} in {} {} ({} {}, {} {}, {} client {})",
            n,
            plural(n, "finding", "findings"),
            c.files,
            plural(c.files, "file", "files"),
            c.virtual_services,
            plural(c.virtual_services, "VirtualService", "VirtualServices"),
            c.destination_rules,
            plural(c.destination_rules, "DestinationRule", "DestinationRules"),
            c.client_calls,
            plural(c.client_calls, "call", "calls"),
        )
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
