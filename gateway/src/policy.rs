//! Bucket policies: the part of the IAM policy language people put on S3
//! buckets, parsed once and evaluated per request.
//!
//! Supported: `Version`, `Statement` (one or a list) with `Sid`, `Effect`
//! (`Allow`, `Deny`), `Principal` (`"*"`, `{"AWS": "*" | name | [names]}`),
//! `Action` / `NotAction` and `Resource` / `NotResource` with `*` and `?`
//! wildcards, and `Condition` with the string, IP-address and boolean
//! operators (and their `…IfExists` forms) on any condition key the
//! request carries (`aws:SourceIp`, `aws:SecureTransport`, `aws:UserAgent`,
//! `aws:Referer`, `s3:prefix`, `s3:delimiter`, `s3:x-amz-acl`,
//! `s3:x-amz-server-side-encryption`, …). Anything else is refused with
//! `MalformedPolicy` when the policy is put, never ignored.
//!
//! Evaluation, as AWS does: an explicit `Deny` that matches wins; else an
//! `Allow` that matches allows; else the policy says nothing (the caller
//! falls back to ownership and ACLs).
//!
//! Principals name Cairn users by access key: `"alice"`,
//! `"arn:aws:iam::<any>:user/alice"` or `"arn:aws:iam::alice:root"`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

/// S3's limit on a bucket policy's size.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn malformed(what: impl Into<String>) -> PolicyError {
    PolicyError(what.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A matching `Deny`: refused whoever asks, the owner too.
    Deny,
    /// A matching `Allow` and no matching `Deny`.
    Allow,
    /// No statement matches.
    Silent,
}

#[derive(Debug, Clone)]
enum Principals {
    Anyone,
    Users(Vec<String>),
}

#[derive(Debug, Clone)]
struct Patterns {
    patterns: Vec<String>,
    /// `NotAction` / `NotResource`: matches what none of them match.
    negated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
}

impl Operator {
    fn parse(name: &str) -> Option<(Self, bool)> {
        let (name, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let op = match name {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringEqualsIgnoreCase" => Self::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Self::StringNotEqualsIgnoreCase,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            "IpAddress" => Self::IpAddress,
            "NotIpAddress" => Self::NotIpAddress,
            "Bool" => Self::Bool,
            "NumericEquals" => Self::NumericEquals,
            "NumericNotEquals" => Self::NumericNotEquals,
            "NumericLessThan" => Self::NumericLessThan,
            "NumericLessThanEquals" => Self::NumericLessThanEquals,
            "NumericGreaterThan" => Self::NumericGreaterThan,
            "NumericGreaterThanEquals" => Self::NumericGreaterThanEquals,
            "DateEquals" => Self::DateEquals,
            "DateNotEquals" => Self::DateNotEquals,
            "DateLessThan" => Self::DateLessThan,
            "DateLessThanEquals" => Self::DateLessThanEquals,
            "DateGreaterThan" => Self::DateGreaterThan,
            "DateGreaterThanEquals" => Self::DateGreaterThanEquals,
            _ => return None,
        };
        Some((op, if_exists))
    }

    /// Negated operators hold when the key is absent (AWS's rule).
    fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals
                | Self::StringNotEqualsIgnoreCase
                | Self::StringNotLike
                | Self::NotIpAddress
                | Self::NumericNotEquals
                | Self::DateNotEquals
        )
    }

    /// How a numeric or date operator compares the request's value with a
    /// policy value; `None` for the other operators.
    fn ordering(self) -> Option<fn(std::cmp::Ordering) -> bool> {
        use std::cmp::Ordering as O;
        Some(match self {
            Self::NumericEquals | Self::DateEquals => |o| o == O::Equal,
            Self::NumericNotEquals | Self::DateNotEquals => |o| o != O::Equal,
            Self::NumericLessThan | Self::DateLessThan => |o| o == O::Less,
            Self::NumericLessThanEquals | Self::DateLessThanEquals => |o| o != O::Greater,
            Self::NumericGreaterThan | Self::DateGreaterThan => |o| o == O::Greater,
            Self::NumericGreaterThanEquals | Self::DateGreaterThanEquals => |o| o != O::Less,
            _ => return None,
        })
    }

    fn is_date(self) -> bool {
        matches!(
            self,
            Self::DateEquals
                | Self::DateNotEquals
                | Self::DateLessThan
                | Self::DateLessThanEquals
                | Self::DateGreaterThan
                | Self::DateGreaterThanEquals
        )
    }
}

/// A numeric condition value (IAM's are decimal numbers).
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A date condition value as Unix seconds: ISO 8601 / RFC 3339 (a bare
/// date is midnight UTC) or epoch seconds, as IAM accepts.
fn date(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds as f64);
    }
    let format = time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &format) {
        return Some(at.unix_timestamp() as f64);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &day)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() as f64)
}

#[derive(Debug, Clone)]
struct Condition {
    operator: Operator,
    if_exists: bool,
    /// Lowercase (condition keys are case-insensitive).
    key: String,
    values: Vec<String>,
    /// `IpAddress` values, parsed.
    networks: Vec<(IpAddr, u8)>,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principals: Principals,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

/// The condition key prefix of an object's current tags (lowercase).
pub const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";
/// The condition key prefix of the tags a write asks for (lowercase).
pub const REQUEST_OBJECT_TAG: &str = "s3:requestobjecttag/";

/// A parsed, validated bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
    /// Whether a condition tests `s3:ExistingObjectTag/…` (the access check
    /// then reads the object's tags; no other policy costs that read).
    existing_object_tags: bool,
}

/// One request as a policy sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The caller's access key; `None` for an anonymous request.
    pub principal: Option<&'a str>,
    /// `s3:GetObject`, …
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// Condition keys the request carries, lowercase (`aws:sourceip`, …).
    pub context: &'a BTreeMap<String, String>,
}

impl Policy {
    /// Parses and validates a policy document for `bucket`.
    pub fn parse(text: &str, bucket: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed("Policies must be 20 KB or smaller"));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let doc = doc
            .as_object()
            .ok_or_else(|| malformed("a policy is a JSON object"))?;
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("unknown field {key}")));
            }
        }
        if let Some(version) = doc.get("Version")
            && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
        {
            return Err(malformed("the policy version must be 2012-10-17"));
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(malformed("Missing required field Statement")),
        };
        let statements: Vec<Statement> = statements
            .into_iter()
            .map(|s| Statement::parse(s, bucket))
            .collect::<Result<_, _>>()?;
        let existing_object_tags = statements.iter().any(|s| {
            s.conditions
                .iter()
                .any(|c: &Condition| c.key.starts_with(EXISTING_OBJECT_TAG))
        });
        Ok(Self {
            statements,
            existing_object_tags,
        })
    }

    /// A policy that denies everything (what a stored policy that cannot
    /// be parsed any more stands for).
    pub fn deny_all(bucket: &str) -> Self {
        Self::parse(
            &format!(
                r#"{{"Statement": {{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::{bucket}", "arn:aws:s3:::{bucket}/*"]}}}}"#
            ),
            bucket,
        )
        .expect("a valid policy")
    }

    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut decision = Decision::Silent;
        for statement in &self.statements {
            if statement.matches(request) {
                match statement.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }

    /// Whether a condition tests an object's existing tags.
    pub fn tests_existing_object_tags(&self) -> bool {
        self.existing_object_tags
    }

    /// Whether the policy grants anything to everyone (`Principal: "*"`
    /// in an `Allow` without conditions that narrow it to known sources),
    /// for PublicAccessBlock's `BlockPublicPolicy`.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && matches!(s.principals, Principals::Anyone)
                && !s.conditions.iter().any(|c| {
                    matches!(c.operator, Operator::IpAddress)
                        || (c.key == "aws:sourcevpc" || c.key == "aws:sourcevpce")
                })
        })
    }
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| malformed(format!("{what} must be strings")))
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        _ => Err(malformed(format!(
            "{what} must be a string or a list of strings"
        ))),
    }
}

impl Statement {
    fn parse(value: &Value, bucket: &str) -> Result<Self, PolicyError> {
        let s = value
            .as_object()
            .ok_or_else(|| malformed("a statement is a JSON object"))?;
        for key in s.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(malformed(format!("unsupported statement field {key}")));
            }
        }
        let effect = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(malformed("Effect must be Allow or Deny")),
        };
        let principals = match s.get("Principal") {
            Some(Value::String(star)) if star == "*" => Principals::Anyone,
            Some(Value::Object(map)) => {
                let mut users = Vec::new();
                let mut anyone = false;
                for (kind, names) in map {
                    if kind != "AWS" {
                        return Err(malformed(format!("unsupported principal type {kind}")));
                    }
                    for name in strings(names, "principals")? {
                        if name == "*" {
                            anyone = true;
                        } else {
                            users.push(principal_name(&name)?);
                        }
                    }
                }
                if anyone {
                    Principals::Anyone
                } else {
                    Principals::Users(users)
                }
            }
            _ => return Err(malformed("Missing required field Principal")),
        };
        Ok(Self {
            principals,
            ..Self::parse_rest(s, effect, bucket)?
        })
    }

    fn parse_rest(
        s: &serde_json::Map<String, Value>,
        effect: Effect,
        bucket: &str,
    ) -> Result<Self, PolicyError> {
        let actions = match (s.get("Action"), s.get("NotAction")) {
            (Some(a), None) => Patterns {
                patterns: strings(a, "actions")?,
                negated: false,
            },
            (None, Some(a)) => Patterns {
                patterns: strings(a, "actions")?,
                negated: true,
            },
            _ => {
                return Err(malformed(
                    "a statement needs exactly one of Action and NotAction",
                ));
            }
        };
        for action in &actions.patterns {
            if action != "*" && !action.to_ascii_lowercase().starts_with("s3:") {
                return Err(malformed(format!("Policy has invalid action {action}")));
            }
        }
        let resources = match (s.get("Resource"), s.get("NotResource")) {
            (Some(r), None) => Patterns {
                patterns: strings(r, "resources")?,
                negated: false,
            },
            (None, Some(r)) => Patterns {
                patterns: strings(r, "resources")?,
                negated: true,
            },
            _ => {
                return Err(malformed(
                    "a statement needs exactly one of Resource and NotResource",
                ));
            }
        };
        let own = format!("arn:aws:s3:::{bucket}");
        let own_objects = format!("{own}/");
        for resource in &resources.patterns {
            // The pattern must be able to match the bucket or one of its
            // objects: its literal start agrees with `arn:aws:s3:::bucket/`.
            let literal = resource
                .find(['*', '?'])
                .map_or(resource.as_str(), |wild| &resource[..wild]);
            let names_bucket = wildcard(resource, &own)
                || own_objects.starts_with(literal)
                || literal.starts_with(&own_objects);
            if !names_bucket {
                return Err(malformed(format!(
                    "Policy has invalid resource {resource} (a bucket policy names its own bucket)"
                )));
            }
        }
        let mut conditions = Vec::new();
        if let Some(block) = s.get("Condition") {
            let block = block
                .as_object()
                .ok_or_else(|| malformed("Condition is a JSON object"))?;
            for (op_name, keys) in block {
                let (operator, if_exists) = Operator::parse(op_name).ok_or_else(|| {
                    malformed(format!("unsupported condition operator {op_name}"))
                })?;
                let keys = keys
                    .as_object()
                    .ok_or_else(|| malformed("a condition maps keys to values"))?;
                for (key, values) in keys {
                    let values = strings(values, "condition values")?;
                    let parse = if operator.is_date() { date } else { number };
                    if operator.ordering().is_some()
                        && let Some(bad) = values.iter().find(|v| parse(v).is_none())
                    {
                        return Err(malformed(format!(
                            "{op_name} needs {} values, not {bad:?}",
                            if operator.is_date() {
                                "date"
                            } else {
                                "numeric"
                            }
                        )));
                    }
                    let networks =
                        if matches!(operator, Operator::IpAddress | Operator::NotIpAddress) {
                            values
                                .iter()
                                .map(|v| parse_cidr(v))
                                .collect::<Result<_, _>>()?
                        } else {
                            Vec::new()
                        };
                    conditions.push(Condition {
                        operator,
                        if_exists,
                        key: key.to_ascii_lowercase(),
                        values,
                        networks,
                    });
                }
            }
        }
        Ok(Self {
            effect,
            principals: Principals::Anyone,
            actions,
            resources,
            conditions,
        })
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        let principal = match &self.principals {
            Principals::Anyone => true,
            Principals::Users(users) => request
                .principal
                .is_some_and(|p| users.iter().any(|u| u == p)),
        };
        principal
            && self.actions.matches(|p| {
                wildcard(
                    &p.to_ascii_lowercase(),
                    &request.action.to_ascii_lowercase(),
                )
            })
            && self.resources.matches(|p| wildcard(p, request.resource))
            && self.conditions.iter().all(|c| c.holds(request.context))
    }
}

impl Patterns {
    fn matches(&self, one: impl Fn(&str) -> bool) -> bool {
        self.patterns.iter().any(|p| one(p)) != self.negated
    }
}

impl Condition {
    fn holds(&self, context: &BTreeMap<String, String>) -> bool {
        let Some(value) = context.get(&self.key) else {
            return self.if_exists || self.operator.negated();
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        match self.operator {
            Operator::StringEquals => any(&|v| v == value),
            Operator::StringNotEquals => !any(&|v| v == value),
            Operator::StringEqualsIgnoreCase => any(&|v| v.eq_ignore_ascii_case(value)),
            Operator::StringNotEqualsIgnoreCase => !any(&|v| v.eq_ignore_ascii_case(value)),
            Operator::StringLike => any(&|v| wildcard(v, value)),
            Operator::StringNotLike => !any(&|v| wildcard(v, value)),
            Operator::Bool => any(&|v| v.eq_ignore_ascii_case(value)),
            Operator::IpAddress | Operator::NotIpAddress => {
                let inside = value.parse::<IpAddr>().is_ok_and(|ip| {
                    self.networks
                        .iter()
                        .any(|(net, bits)| in_network(ip, *net, *bits))
                });
                inside == (self.operator == Operator::IpAddress)
            }
            op => {
                let (Some(compare), parse) =
                    (op.ordering(), if op.is_date() { date } else { number })
                else {
                    return false;
                };
                let Some(actual) = parse(value) else {
                    // A request value that is not a number (or date) fails
                    // every comparison but "not equals".
                    return op.negated();
                };
                let holds = |v: &str| {
                    parse(v)
                        .and_then(|wanted| actual.partial_cmp(&wanted))
                        .is_some_and(compare)
                };
                if op.negated() {
                    self.values.iter().all(|v| holds(v))
                } else {
                    any(&|v| holds(v))
                }
            }
        }
    }
}

/// The user a principal string names.
fn principal_name(text: &str) -> Result<String, PolicyError> {
    if let Some(rest) = text.strip_prefix("arn:aws:iam::") {
        let (account, resource) = rest
            .split_once(':')
            .ok_or_else(|| malformed(format!("Invalid principal in policy: {text}")))?;
        return match resource {
            "root" => Ok(account.to_owned()),
            _ => resource
                .strip_prefix("user/")
                .map(|name| name.rsplit('/').next().unwrap_or(name).to_owned())
                .ok_or_else(|| malformed(format!("Invalid principal in policy: {text}"))),
        };
    }
    if text.is_empty() || text.contains(':') {
        return Err(malformed(format!("Invalid principal in policy: {text}")));
    }
    Ok(text.to_owned())
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), PolicyError> {
    let bad = || malformed(format!("invalid IP address or network {text}"));
    let (addr, bits) = match text.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u8>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return Err(bad());
    }
    Ok((ip, bits))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            None => return false,
        },
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (ip >> shift) == (net >> shift)
}

/// `*` matches any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_KEYS: BTreeMap<String, String> = BTreeMap::new();

    fn request<'a>(principal: Option<&'a str>, action: &'a str, resource: &'a str) -> Request<'a> {
        Request {
            principal,
            action,
            resource,
            context: &NO_KEYS,
        }
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard("s3:Get*", "s3:GetObject"));
        assert!(wildcard("*", ""));
        assert!(wildcard("arn:aws:s3:::b/logs/*", "arn:aws:s3:::b/logs/a/b"));
        assert!(!wildcard("arn:aws:s3:::b/logs/*", "arn:aws:s3:::b/log"));
        assert!(wildcard("a?c*e", "abcde"));
        assert!(!wildcard("a?c", "ac"));
    }

    #[test]
    fn an_explicit_deny_beats_an_allow() {
        let policy = Policy::parse(
            r#"{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": "arn:aws:s3:::b/*"},
                {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": "arn:aws:s3:::b/private/*"}]}"#,
            "b",
        )
        .expect("valid");
        let get = |key: &str| {
            let resource = format!("arn:aws:s3:::b/{key}");
            policy.evaluate(&request(None, "s3:GetObject", &resource))
        };
        assert_eq!(get("public/a"), Decision::Allow);
        assert_eq!(get("private/a"), Decision::Deny);
        assert_eq!(
            policy.evaluate(&request(
                Some("bob"),
                "s3:PutObject",
                "arn:aws:s3:::b/public/a"
            )),
            Decision::Silent
        );
        assert!(policy.is_public());
    }

    #[test]
    fn principals_name_users_by_access_key() {
        let policy = Policy::parse(
            r#"{"Statement": {"Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::123456789012:user/alice", "bob", "arn:aws:iam::carol:root"]},
                "Action": ["s3:ListBucket", "s3:GetObject"],
                "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}}"#,
            "b",
        )
        .expect("valid");
        for user in ["alice", "bob", "carol"] {
            assert_eq!(
                policy.evaluate(&request(Some(user), "s3:ListBucket", "arn:aws:s3:::b")),
                Decision::Allow,
                "{user}"
            );
        }
        assert_eq!(
            policy.evaluate(&request(Some("mallory"), "s3:ListBucket", "arn:aws:s3:::b")),
            Decision::Silent
        );
        assert_eq!(
            policy.evaluate(&request(None, "s3:GetObject", "arn:aws:s3:::b/x")),
            Decision::Silent
        );
        assert!(!policy.is_public());
    }

    #[test]
    fn conditions_on_ip_prefix_transport_and_user_agent() {
        let policy = Policy::parse(
            r#"{"Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
                 "Resource": "arn:aws:s3:::b",
                 "Condition": {"StringLike": {"s3:prefix": ["home/*", ""]},
                               "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]}}},
                {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
                 "Condition": {"Bool": {"aws:SecureTransport": "false"},
                               "StringNotLikeIfExists": {"aws:UserAgent": "trusted-*"}}}]}"#,
            "b",
        )
        .expect("valid");
        let with = |pairs: &[(&str, &str)], action: &'static str, resource: &'static str| {
            let keys: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let mut r = request(Some("u"), action, resource);
            r.context = &keys;
            policy.evaluate(&r)
        };
        let list = "arn:aws:s3:::b";
        assert_eq!(
            with(
                &[("s3:prefix", "home/a"), ("aws:sourceip", "10.1.2.3")],
                "s3:ListBucket",
                list
            ),
            Decision::Allow
        );
        assert_eq!(
            with(
                &[("s3:prefix", "etc/"), ("aws:sourceip", "10.1.2.3")],
                "s3:ListBucket",
                list
            ),
            Decision::Silent
        );
        assert_eq!(
            with(
                &[("s3:prefix", "home/a"), ("aws:sourceip", "192.168.0.1")],
                "s3:ListBucket",
                list
            ),
            Decision::Silent
        );
        assert_eq!(
            with(
                &[("s3:prefix", ""), ("aws:sourceip", "::1")],
                "s3:ListBucket",
                list
            ),
            Decision::Allow
        );
        // Missing key: a positive operator does not hold.
        assert_eq!(
            with(&[("s3:prefix", "home/a")], "s3:ListBucket", list),
            Decision::Silent
        );
        let object = "arn:aws:s3:::b/k";
        assert_eq!(
            with(
                &[("aws:securetransport", "false"), ("aws:useragent", "curl")],
                "s3:GetObject",
                object
            ),
            Decision::Deny
        );
        assert_eq!(
            with(
                &[
                    ("aws:securetransport", "false"),
                    ("aws:useragent", "trusted-1")
                ],
                "s3:GetObject",
                object
            ),
            Decision::Silent
        );
        // …IfExists: an absent key holds.
        assert_eq!(
            with(&[("aws:securetransport", "false")], "s3:GetObject", object),
            Decision::Deny
        );
        assert_eq!(
            with(&[("aws:securetransport", "true")], "s3:GetObject", object),
            Decision::Silent
        );
    }

    #[test]
    fn malformed_policies_are_refused_not_ignored() {
        let bad = [
            "not json",
            r#"{"Statement": []}"#,
            r#"{"Version": "2000-01-01", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#,
            r#"{"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "ec2:*", "Resource": "arn:aws:s3:::b"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::other/*"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "yesterday"}}}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"NumericLessThan": {"s3:max-keys": "ten"}}}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"BinaryEquals": {"s3:x": "AA=="}}}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#,
        ];
        for text in bad {
            assert!(Policy::parse(text, "b").is_err(), "{text}");
        }
        assert!(Policy::parse(&"x".repeat(MAX_POLICY_BYTES + 1), "b").is_err());
        // Wildcards that can reach the bucket are fine.
        for resource in [
            "arn:aws:s3:::*",
            "arn:aws:s3:::*/*",
            "arn:aws:s3:::b*",
            "arn:aws:s3:::b/logs/*",
        ] {
            let text = format!(
                r#"{{"Statement": {{"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "{resource}"}}}}"#
            );
            assert!(Policy::parse(&text, "b").is_ok(), "{resource}");
        }
        for resource in ["arn:aws:s3:::c*", "arn:aws:s3:::bb/*", "arn:aws:s3:::a/*"] {
            let text = format!(
                r#"{{"Statement": {{"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "{resource}"}}}}"#
            );
            assert!(Policy::parse(&text, "b").is_err(), "{resource}");
        }
    }

    #[test]
    fn numeric_date_and_tag_conditions_compare_values() {
        let policy = Policy::parse(
            r#"{"Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
                 "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}}},
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*",
                 "Condition": {"StringEquals": {"s3:ExistingObjectTag/Security": "public"},
                               "DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}},
                {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*",
                 "Condition": {"StringNotEquals": {"s3:RequestObjectTag/project": "x"}}}]}"#,
            "b",
        )
        .expect("valid");
        assert!(policy.tests_existing_object_tags());
        let with = |pairs: &[(&str, &str)], action: &'static str, resource: &'static str| {
            let keys: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let mut r = request(Some("u"), action, resource);
            r.context = &keys;
            policy.evaluate(&r)
        };
        let (bucket, object) = ("arn:aws:s3:::b", "arn:aws:s3:::b/k");
        assert_eq!(
            with(&[("s3:max-keys", "10")], "s3:ListBucket", bucket),
            Decision::Allow
        );
        assert_eq!(
            with(&[("s3:max-keys", "11")], "s3:ListBucket", bucket),
            Decision::Silent
        );
        assert_eq!(
            with(&[("s3:max-keys", "many")], "s3:ListBucket", bucket),
            Decision::Silent
        );
        let now = ("aws:currenttime", "2026-12-01T12:00:00Z");
        let public = ("s3:existingobjecttag/security", "public");
        assert_eq!(
            with(&[now, public], "s3:GetObject", object),
            Decision::Allow
        );
        assert_eq!(with(&[now], "s3:GetObject", object), Decision::Silent);
        let later = ("aws:currenttime", "2100-01-01T00:00:00Z");
        assert_eq!(
            with(&[later, public], "s3:GetObject", object),
            Decision::Silent
        );
        assert_eq!(with(&[], "s3:PutObject", object), Decision::Deny);
        assert_eq!(
            with(
                &[("s3:requestobjecttag/project", "x")],
                "s3:PutObject",
                object
            ),
            Decision::Silent
        );
        assert_eq!(date("2020-01-01"), date("2020-01-01T00:00:00Z"));
        assert_eq!(date("1577836800"), date("2020-01-01"));
    }
}
