//! The template manifest `coder.yaml`: parsing, validation with line numbers, and the rules
//! parameter values must follow. Documented in `docs/templates.md`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::container::{DockerSpec, ProvisionerKind, RawDocker, container_spec};

use super::FieldError;
use super::text::{StoredText, limits};
use super::workspace::{ParameterValue, WORKSPACE_HOME};

/// The file name the manifest has at the root of a template archive.
pub const MANIFEST_FILE: &str = "coder.yaml";

/// How long a startup script may run before the agent is marked `start_timeout`, by default.
pub const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 300;
pub const MAX_STARTUP_TIMEOUT_SECS: u64 = 3600;
const MAX_PARAMETERS: usize = 64;
const MAX_APPS: usize = 32;
/// The largest manifest parsed (the archive reader caps the file at the same size).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// How deeply collections may nest. A valid manifest needs 6 levels (a list default inside an
/// option inside a parameter); the limit leaves room and stops nesting bombs before they cost
/// time: serde_yaml spent ~35 s of CPU on 100,000 levels.
pub const MAX_MANIFEST_DEPTH: usize = 32;
/// How many YAML nodes (scalars, lists, maps) a manifest may have.
pub const MAX_MANIFEST_NODES: usize = 100_000;
/// How many aliases (`*name`) a manifest may use, and how many events they may replay: bounds
/// "billion laughs" expansion.
pub const MAX_MANIFEST_ALIASES: usize = 1_000;
const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;

/// A validated manifest, stored as JSON with its template version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub parameters: Vec<Parameter>,
    pub agent: AgentSpec,
    pub apps: Vec<AppSpec>,
    /// Which provisioner builds its workspaces (`provisioner:`); absent in manifests stored
    /// before it existed, which are local.
    #[serde(default)]
    pub provisioner: ProvisionerKind,
    /// The container of a `provisioner: docker` template (`docker:`).
    #[serde(default)]
    pub docker: Option<DockerSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterType {
    #[serde(rename = "string")]
    String,
    #[serde(rename = "number")]
    Number,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "list(string)")]
    ListString,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::Number => "number",
            ParameterType::Bool => "bool",
            ParameterType::ListString => "list(string)",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(ParameterType::String),
            "number" => Some(ParameterType::Number),
            "bool" => Some(ParameterType::Bool),
            "list(string)" => Some(ParameterType::ListString),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterOption {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub icon: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ParameterValidation {
    pub regex: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Shown instead of the generic message when a value fails the validation.
    #[serde(default)]
    pub error: String,
}

/// A rich parameter, as Coder's `coder_parameter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub display_name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// `None` makes the parameter required.
    pub default: Option<String>,
    pub mutable: bool,
    pub icon: String,
    pub options: Vec<ParameterOption>,
    pub validation: ParameterValidation,
}

impl Parameter {
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    /// The environment variable carrying the value inside the workspace.
    pub fn env_name(&self) -> String {
        parameter_env_name(&self.name)
    }

    /// Checks one value; the message says what would be accepted.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let fail = |generic: String| {
            if self.validation.error.is_empty() {
                Err(generic)
            } else {
                Err(self.validation.error.clone())
            }
        };
        match self.kind {
            ParameterType::String => {
                if let Some(pattern) = &self.validation.regex {
                    let re = regex_lite::Regex::new(pattern)
                        .map_err(|e| format!("the template's regex is invalid: {e}"))?;
                    if !re.is_match(value) {
                        return fail(format!("{value:?} does not match the pattern {pattern}."));
                    }
                }
            }
            ParameterType::Number => {
                let n: f64 = match value.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => n,
                    _ => return Err(format!("{value:?} is not a number.")),
                };
                if let Some(min) = self.validation.min
                    && n < min as f64
                {
                    return fail(format!("{value} is less than the minimum {min}."));
                }
                if let Some(max) = self.validation.max
                    && n > max as f64
                {
                    return fail(format!("{value} is more than the maximum {max}."));
                }
            }
            ParameterType::Bool => {
                if value != "true" && value != "false" {
                    return Err(format!("{value:?} is not a bool; use true or false."));
                }
            }
            ParameterType::ListString => {
                if serde_json::from_str::<Vec<String>>(value).is_err() {
                    return Err(format!(
                        "{value:?} is not a list of strings; give a JSON array such as [\"a\",\"b\"]."
                    ));
                }
            }
        }
        if !self.options.is_empty() {
            let allowed: Vec<&str> = self.options.iter().map(|o| o.value.as_str()).collect();
            let values: Vec<String> = match self.kind {
                ParameterType::ListString => {
                    serde_json::from_str::<Vec<String>>(value).unwrap_or_default()
                }
                _ => vec![value.to_owned()],
            };
            if let Some(bad) = values.iter().find(|v| !allowed.contains(&v.as_str())) {
                return fail(format!(
                    "{bad:?} is not one of the options: {}.",
                    allowed.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// `CODER_PARAM_` and the name upper-cased, every character other than a letter or digit
/// turned into `_`.
pub fn parameter_env_name(name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CODER_PARAM_{tail}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub startup_script: String,
    /// Extra environment, applied to the startup script and every command.
    pub env: BTreeMap<String, String>,
    /// Where commands start, as an absolute path inside the workspace.
    pub dir: String,
    pub startup_timeout_secs: u64,
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            startup_script: String::new(),
            env: BTreeMap::new(),
            dir: WORKSPACE_HOME.to_owned(),
            startup_timeout_secs: DEFAULT_STARTUP_TIMEOUT_SECS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    pub slug: String,
    pub display_name: String,
    pub url: String,
    pub icon: String,
}

/// Why a manifest was refused: a message that names the file, the line when known, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(pub String);

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ManifestError {}

// The file as written; every key is checked so that typos are reported, not ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default, deserialize_with = "null_as_default")]
    parameters: Vec<RawParameter>,
    #[serde(default)]
    agent: Option<RawAgent>,
    #[serde(default, deserialize_with = "null_as_default")]
    apps: Vec<RawApp>,
    #[serde(default)]
    provisioner: Option<String>,
    #[serde(default)]
    docker: Option<RawDocker>,
}

/// A key written without a value (`parameters:`) means the same as an empty list or map.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    mutable: bool,
    #[serde(default)]
    icon: String,
    #[serde(default, deserialize_with = "null_as_default")]
    options: Vec<RawOption>,
    #[serde(default)]
    validation: Option<RawValidation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    name: String,
    value: serde_json::Value,
    #[serde(default)]
    description: String,
    #[serde(default)]
    icon: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    regex: Option<String>,
    min: Option<i64>,
    max: Option<i64>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    #[serde(default)]
    startup_script: String,
    #[serde(default, deserialize_with = "null_as_default")]
    env: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    startup_timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    slug: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    icon: String,
}

impl Manifest {
    /// Parses and validates `coder.yaml`.
    pub fn parse(source: &str) -> Result<Manifest, ManifestError> {
        if source.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError(format!(
                "{MANIFEST_FILE} is larger than {} KiB; shorten it.",
                MAX_MANIFEST_BYTES / 1024
            )));
        }
        let raw: RawManifest = if source.trim().is_empty() {
            RawManifest {
                parameters: Vec::new(),
                agent: None,
                apps: Vec::new(),
                provisioner: None,
                docker: None,
            }
        } else {
            parse_yaml(source)?
        };
        let (provisioner, docker) = container_spec(raw.provisioner.as_deref(), raw.docker)
            .map_err(|e| {
                let line = line_of_key(source, "docker")
                    .or_else(|| line_of_key(source, "provisioner"))
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                ManifestError(format!("{MANIFEST_FILE}{line}: {e}"))
            })?;
        let manifest = Manifest {
            parameters: parameters(source, raw.parameters)?,
            agent: match raw.agent {
                None => AgentSpec::default(),
                Some(a) => agent(source, a)?,
            },
            apps: apps(source, raw.apps)?,
            provisioner,
            docker,
        };
        manifest.check_texts(source)?;
        Ok(manifest)
    }

    /// The stored-text rule on every string of the manifest: it is stored with the version, and
    /// its values reach pages, logs and the workspace's environment.
    fn check_texts(&self, source: &str) -> Result<(), ManifestError> {
        const PATH: StoredText = StoredText::line(1024);
        let check = |what: String, line: Option<usize>, value: &str, rule: StoredText| {
            rule.check(value).map_err(|problem| {
                let line = line.map(|l| format!(" (line {l})")).unwrap_or_default();
                ManifestError(format!("{MANIFEST_FILE}: {what}{line} {problem}."))
            })
        };
        for (i, p) in self.parameters.iter().enumerate() {
            let line = line_of(source, "name", &p.name);
            let field = |f: &str| format!("parameters[{i}] {:?}: {f}", p.name);
            check(
                field("display_name"),
                line,
                &p.display_name,
                limits::DISPLAY_NAME,
            )?;
            check(
                field("description"),
                line,
                &p.description,
                limits::DESCRIPTION,
            )?;
            check(field("icon"), line, &p.icon, limits::ICON)?;
            if let Some(default) = &p.default {
                check(field("default"), line, default, limits::PARAMETER_VALUE)?;
            }
            if let Some(regex) = &p.validation.regex {
                check(field("validation.regex"), line, regex, PATH)?;
            }
            check(
                field("validation.error"),
                line,
                &p.validation.error,
                limits::DESCRIPTION,
            )?;
            for (j, o) in p.options.iter().enumerate() {
                let field = |f: &str| field(&format!("options[{j}].{f}"));
                check(field("name"), line, &o.name, limits::DISPLAY_NAME)?;
                check(field("value"), line, &o.value, limits::PARAMETER_VALUE)?;
                check(
                    field("description"),
                    line,
                    &o.description,
                    limits::DESCRIPTION,
                )?;
                check(field("icon"), line, &o.icon, limits::ICON)?;
            }
        }
        let a = &self.agent;
        check(
            "agent.startup_script".into(),
            line_of_key(source, "startup_script"),
            &a.startup_script,
            limits::SCRIPT,
        )?;
        check("agent.dir".into(), line_of_key(source, "dir"), &a.dir, PATH)?;
        for (key, value) in &a.env {
            check(
                format!("agent.env.{key}"),
                line_of_key(source, key),
                value,
                limits::PARAMETER_VALUE,
            )?;
        }
        for (i, app) in self.apps.iter().enumerate() {
            let line = line_of(source, "slug", &app.slug);
            let field = |f: &str| format!("apps[{i}] {:?}: {f}", app.slug);
            check(
                field("display_name"),
                line,
                &app.display_name,
                limits::DISPLAY_NAME,
            )?;
            check(field("url"), line, &app.url, limits::URI)?;
            check(field("icon"), line, &app.icon, limits::ICON)?;
        }
        Ok(())
    }

    /// The manifest stored with a version, back from JSON.
    pub fn from_json(json: &str) -> Result<Manifest, String> {
        serde_json::from_str(json).map_err(|e| format!("stored manifest is unreadable: {e}"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// The `parameters` list: at most `MAX_PARAMETERS`, each checked, their names distinct as
/// environment variables. Errors name the parameter and its line.
fn parameters(source: &str, raw: Vec<RawParameter>) -> Result<Vec<Parameter>, ManifestError> {
    if raw.len() > MAX_PARAMETERS {
        return Err(ManifestError(format!(
            "{MANIFEST_FILE}: at most {MAX_PARAMETERS} parameters are allowed."
        )));
    }
    let mut parameters = Vec::new();
    let mut seen = HashSet::new();
    for (i, p) in raw.into_iter().enumerate() {
        let pname = p.name.clone();
        let at = |what: String| {
            let line = line_of(source, "name", &pname)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            ManifestError(format!(
                "{MANIFEST_FILE}: parameters[{i}] {pname:?}{line}: {what}"
            ))
        };
        parameters.push(parameter(p, &mut seen, &at)?);
    }
    Ok(parameters)
}

/// One parameter: its name (not among the `seen` ones), type, options, validation and default,
/// which must pass them.
fn parameter(
    p: RawParameter,
    seen: &mut HashSet<String>,
    at: &impl Fn(String) -> ManifestError,
) -> Result<Parameter, ManifestError> {
    if !valid_parameter_name(&p.name) {
        return Err(at(
            "the name must be 1-64 letters, digits, underscores or hyphens.".into(),
        ));
    }
    if !seen.insert(parameter_env_name(&p.name)) {
        return Err(at(format!(
            "another parameter has the same name (names are compared as {}).",
            parameter_env_name(&p.name)
        )));
    }
    let kind = match p.kind.as_deref() {
        None => ParameterType::String,
        Some(k) => ParameterType::parse(k).ok_or_else(|| {
            at(format!(
                "unknown type {k:?}; use string, number, bool or list(string)."
            ))
        })?,
    };
    let options = parameter_options(p.options, kind, at)?;
    let validation = match p.validation {
        None => ParameterValidation::default(),
        Some(v) => parameter_validation(v, kind, at)?,
    };
    let default = match &p.default {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(scalar_to_string(v, kind).map_err(|e| at(format!("default: {e}")))?),
    };
    let parameter = Parameter {
        display_name: if p.display_name.is_empty() {
            p.name.clone()
        } else {
            p.display_name
        },
        name: p.name,
        description: p.description,
        kind,
        default,
        mutable: p.mutable,
        icon: p.icon,
        options,
        validation,
    };
    if let Some(default) = &parameter.default
        && let Err(why) = parameter.check(default)
    {
        return Err(at(format!("the default value is invalid: {why}")));
    }
    Ok(parameter)
}

/// A parameter's options: values of its type, each once; bool parameters have none.
fn parameter_options(
    raw: Vec<RawOption>,
    kind: ParameterType,
    at: &impl Fn(String) -> ManifestError,
) -> Result<Vec<ParameterOption>, ManifestError> {
    let mut options = Vec::new();
    let mut option_values = HashSet::new();
    for o in raw {
        let value = scalar_to_string(&o.value, kind)
            .map_err(|e| at(format!("option {:?}: {e}", o.name)))?;
        if !option_values.insert(value.clone()) {
            return Err(at(format!("option value {value:?} appears twice.")));
        }
        options.push(ParameterOption {
            name: o.name,
            value,
            description: o.description,
            icon: o.icon,
        });
    }
    if kind == ParameterType::Bool && !options.is_empty() {
        return Err(at("bool parameters cannot have options.".into()));
    }
    Ok(options)
}

/// A parameter's validation: a regex for strings, a range for numbers.
fn parameter_validation(
    v: RawValidation,
    kind: ParameterType,
    at: &impl Fn(String) -> ManifestError,
) -> Result<ParameterValidation, ManifestError> {
    if v.regex.is_some() && kind != ParameterType::String {
        return Err(at(
            "validation.regex applies to string parameters only.".into()
        ));
    }
    if (v.min.is_some() || v.max.is_some()) && kind != ParameterType::Number {
        return Err(at(
            "validation.min and validation.max apply to number parameters only.".into(),
        ));
    }
    if let Some(pattern) = &v.regex {
        regex_lite::Regex::new(pattern).map_err(|e| {
            at(format!(
                "validation.regex {pattern:?} is not a valid regex: {e}"
            ))
        })?;
    }
    if let (Some(min), Some(max)) = (v.min, v.max)
        && min > max
    {
        return Err(at(format!(
            "validation.min ({min}) is greater than validation.max ({max})."
        )));
    }
    Ok(ParameterValidation {
        regex: v.regex,
        min: v.min,
        max: v.max,
        error: v.error,
    })
}

/// The `agent` section: its environment, working directory and startup timeout.
fn agent(source: &str, a: RawAgent) -> Result<AgentSpec, ManifestError> {
    let env = agent_env(source, a.env)?;
    let dir = match a.dir {
        None => WORKSPACE_HOME.to_owned(),
        Some(d) => normalize_workspace_dir(&d).ok_or_else(|| {
            ManifestError(format!(
                "{MANIFEST_FILE}: agent.dir{}: {d:?} must be inside {WORKSPACE_HOME} (relative paths are taken from there).",
                line_of_key(source, "dir").map(|l| format!(" (line {l})")).unwrap_or_default()
            ))
        })?,
    };
    let startup_timeout_secs = a.startup_timeout.unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECS);
    if startup_timeout_secs == 0 || startup_timeout_secs > MAX_STARTUP_TIMEOUT_SECS {
        return Err(ManifestError(format!(
            "{MANIFEST_FILE}: agent.startup_timeout{}: must be 1-{MAX_STARTUP_TIMEOUT_SECS} seconds.",
            line_of_key(source, "startup_timeout")
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default()
        )));
    }
    Ok(AgentSpec {
        startup_script: a.startup_script,
        env,
        dir,
        startup_timeout_secs,
    })
}

/// `agent.env`: valid variable names the server does not set itself, with scalar values.
fn agent_env(
    source: &str,
    raw: BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut env = BTreeMap::new();
    for (key, value) in raw {
        let line = line_of_key(source, &key)
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        if !valid_env_name(&key) {
            return Err(ManifestError(format!(
                "{MANIFEST_FILE}: agent.env{line}: {key:?} is not a valid variable name (letters, digits and underscores, not starting with a digit)."
            )));
        }
        if reserved_env_name(&key) {
            return Err(ManifestError(format!(
                "{MANIFEST_FILE}: agent.env{line}: {key} is set by the server and cannot be overridden."
            )));
        }
        let value = scalar_to_string(&value, ParameterType::String)
            .map_err(|e| ManifestError(format!("{MANIFEST_FILE}: agent.env.{key}{line}: {e}")))?;
        env.insert(key, value);
    }
    Ok(env)
}

/// The `apps` list: at most `MAX_APPS`, slugs unique, each at a URL or a local port.
fn apps(source: &str, raw: Vec<RawApp>) -> Result<Vec<AppSpec>, ManifestError> {
    if raw.len() > MAX_APPS {
        return Err(ManifestError(format!(
            "{MANIFEST_FILE}: at most {MAX_APPS} apps are allowed."
        )));
    }
    let mut apps = Vec::new();
    let mut slugs = HashSet::new();
    for (i, a) in raw.into_iter().enumerate() {
        let at = |what: &str| {
            let line = line_of(source, "slug", &a.slug)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            ManifestError(format!(
                "{MANIFEST_FILE}: apps[{i}] {:?}{line}: {what}",
                a.slug
            ))
        };
        if !valid_slug(&a.slug) {
            return Err(at(
                "the slug must be 1-32 lowercase letters or digits, optionally joined by single hyphens.",
            ));
        }
        if !slugs.insert(a.slug.clone()) {
            return Err(at("another app has the same slug."));
        }
        let url = app_url(a.url.as_deref(), a.port).map_err(at)?;
        apps.push(AppSpec {
            display_name: if a.display_name.is_empty() {
                a.slug.clone()
            } else {
                a.display_name
            },
            slug: a.slug,
            url,
            icon: a.icon,
        });
    }
    Ok(apps)
}

/// Where an app is served: an absolute http(s) `url`, or a `port` on the workspace's localhost.
fn app_url(url: Option<&str>, port: Option<u32>) -> Result<String, &'static str> {
    match (url, port) {
        (Some(url), None) => {
            let parsed =
                url::Url::parse(url).map_err(|_| "url must be an absolute http or https URL.")?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("url must be an absolute http or https URL.");
            }
            Ok(url.to_owned())
        }
        (None, Some(port)) if (1..=65535).contains(&port) => Ok(format!("http://localhost:{port}")),
        (None, Some(_)) => Err("port must be 1-65535."),
        _ => Err("give exactly one of url or port."),
    }
}

/// Deserializes the YAML within the manifest budgets. The error names the line and column.
fn parse_yaml(source: &str) -> Result<RawManifest, ManifestError> {
    let budget = serde_saphyr::budget! {
        max_depth: MAX_MANIFEST_DEPTH,
        flow_nesting_limit: MAX_MANIFEST_DEPTH,
        max_nodes: MAX_MANIFEST_NODES,
        max_aliases: MAX_MANIFEST_ALIASES,
        max_anchors: MAX_MANIFEST_ALIASES,
        max_documents: 1,
        max_total_scalar_bytes: MAX_MANIFEST_BYTES,
    };
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = MAX_ALIAS_REPLAYED_EVENTS;
    let options = serde_saphyr::options! {
        budget: budget,
        alias_limits: alias_limits,
        // YAML 1.2: `yes`, `no`, `on` and `off` are strings, as they were with serde_yaml.
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(source, options).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        ManifestError(format!("{MANIFEST_FILE}{at}: {}", yaml_message(&e)))
    })
}

/// What a YAML error means for the template author, without its location (said in front).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::budget::BudgetBreach;
    const TOO_COMPLEX: &str = "the manifest is too large or complex";
    // The cause, under the wrappers that add where an alias was used.
    let mut cause = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = cause
    {
        cause = error;
    }
    if let serde_saphyr::Error::Budget { breach, .. } = cause {
        return match breach {
            BudgetBreach::Depth { .. } => format!(
                "{TOO_COMPLEX}: it nests deeper than {MAX_MANIFEST_DEPTH} levels; flatten it."
            ),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
                format!("{TOO_COMPLEX}: it has more than {MAX_MANIFEST_NODES} values; shorten it.")
            }
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. } => format!(
                "{TOO_COMPLEX}: it uses more than {MAX_MANIFEST_ALIASES} anchors or aliases; write the values out."
            ),
            BudgetBreach::Documents { .. } => {
                "it holds more than one YAML document; remove the `---` separators.".to_owned()
            }
            _ => format!("{TOO_COMPLEX}; simplify it."),
        };
    }
    if matches!(
        cause,
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
            | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
            | serde_saphyr::Error::AliasReplayCounterOverflow { .. }
    ) {
        return format!(
            "{TOO_COMPLEX}: its aliases expand to more than {MAX_ALIAS_REPLAYED_EVENTS} values; write the values out."
        );
    }
    let text = e.render_with_options(serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    // The plain rendering ends with the location, which is already in front; keep it once.
    let text = text.split(" at line ").next().unwrap_or(&text);
    // The parser's own nesting guard (flow collections such as `[[[`) says "recursion limit".
    if text.contains("recursion limit exceeded") {
        return format!(
            "{TOO_COMPLEX}: it nests deeper than {MAX_MANIFEST_DEPTH} levels; flatten it."
        );
    }
    // A hint meant for the programmer, not the template author.
    text.trim_end_matches(", set DuplicateKeyPolicy in Options if acceptable")
        .to_owned()
}

/// Resolves a build's parameter values: those supplied, else the previous build's, else the
/// defaults. Every problem is reported at once, named by parameter.
pub fn resolve_parameters(
    parameters: &[Parameter],
    previous: Option<&[ParameterValue]>,
    supplied: &[ParameterValue],
) -> Result<Vec<ParameterValue>, Vec<FieldError>> {
    let mut problems = Vec::new();
    let given = supplied_values(parameters, supplied, &mut problems);
    let before: HashMap<&str, &str> = previous
        .unwrap_or_default()
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    let mut resolved = Vec::new();
    for p in parameters {
        let name = p.name.as_str();
        match resolve_parameter(p, given.get(name).copied(), before.get(name).copied()) {
            Ok(value) => resolved.push(ParameterValue {
                name: p.name.clone(),
                value,
            }),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

/// The supplied values by name; a value that breaks the stored-text rule, is given twice or
/// names no parameter is a problem.
fn supplied_values<'a>(
    parameters: &[Parameter],
    supplied: &'a [ParameterValue],
    problems: &mut Vec<FieldError>,
) -> HashMap<&'a str, &'a str> {
    let mut given: HashMap<&str, &str> = HashMap::new();
    for v in supplied {
        // Values are stored with the build and passed into the workspace's environment.
        if let Err(problem) = limits::PARAMETER_VALUE.check(&v.value) {
            problems.push(FieldError::new(
                v.name.clone(),
                format!("The value {problem}."),
            ));
            continue;
        }
        if given.insert(v.name.as_str(), v.value.as_str()).is_some() {
            problems.push(FieldError::new(
                v.name.clone(),
                "This parameter is given more than once.",
            ));
        }
        if !parameters.iter().any(|p| p.name == v.name) {
            let known: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
            problems.push(FieldError::new(
                v.name.clone(),
                if known.is_empty() {
                    "The template version takes no parameters.".to_owned()
                } else {
                    format!(
                        "The template version has no such parameter; it takes: {}.",
                        known.join(", ")
                    )
                },
            ));
        }
    }
    given
}

/// One parameter's value: the `new` one supplied (an immutable parameter keeps its `old` one),
/// else the previous build's, else its default; then checked against the parameter.
fn resolve_parameter(
    p: &Parameter,
    new: Option<&str>,
    old: Option<&str>,
) -> Result<String, FieldError> {
    let value = match (new, old) {
        (Some(new), Some(old)) if !p.mutable && new != old => {
            return Err(FieldError::new(
                p.name.clone(),
                format!(
                    "This parameter is immutable: it was set to {old:?} when the workspace was created and cannot be changed."
                ),
            ));
        }
        (Some(new), _) => new.to_owned(),
        (None, Some(old)) => old.to_owned(),
        (None, None) => p.default.clone().ok_or_else(|| {
            FieldError::new(
                p.name.clone(),
                format!(
                    "This parameter is required: give it a value of type {}{}.",
                    p.kind.as_str(),
                    if p.options.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (one of: {})",
                            p.options
                                .iter()
                                .map(|o| o.value.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            )
        })?,
    };
    p.check(&value)
        .map_err(|why| FieldError::new(p.name.clone(), why))?;
    Ok(value)
}

fn valid_parameter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables the server sets; a template cannot fake them.
fn reserved_env_name(name: &str) -> bool {
    matches!(name, "HOME" | "USER" | "CODER") || name.starts_with("CODER_")
}

/// Coder's app slug rule.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 32
        && slug.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// `dir` as an absolute path under the workspace home, or `None` when it leaves it.
fn normalize_workspace_dir(dir: &str) -> Option<String> {
    let rest = match dir.strip_prefix(WORKSPACE_HOME) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        Some(_) => return None,
        None if dir.starts_with('/') => return None,
        None => dir,
    };
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(if parts.is_empty() {
        WORKSPACE_HOME.to_owned()
    } else {
        format!("{WORKSPACE_HOME}/{}", parts.join("/"))
    })
}

/// Renders a YAML value as a parameter value of `kind`.
fn scalar_to_string(value: &serde_json::Value, kind: ParameterType) -> Result<String, String> {
    use serde_json::Value;
    match (value, kind) {
        (Value::Array(items), ParameterType::ListString) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect();
            strings
                .map(|s| serde_json::Value::from(s).to_string())
                .ok_or_else(|| "a list(string) value must be a list of strings.".to_owned())
        }
        (Value::String(s), _) => Ok(s.clone()),
        (Value::Number(n), _) => Ok(n.to_string()),
        (Value::Bool(b), _) => Ok(b.to_string()),
        _ => Err("must be a string, number or bool.".to_owned()),
    }
}

/// The 1-based line where `key: value` (optionally a list item) first appears.
fn line_of(source: &str, key: &str, value: &str) -> Option<usize> {
    source
        .lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches("- ").trim();
            line.strip_prefix(key)
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
                .is_some_and(|v| v == value)
        })
        .map(|i| i + 1)
}

/// The 1-based line where `key:` first appears.
fn line_of_key(source: &str, key: &str) -> Option<usize> {
    source
        .lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FULL: &str = r#"
parameters:
  - name: region
    display_name: Region
    type: string
    default: eu
    options:
      - name: Europe
        value: eu
      - name: United States
        value: us
  - name: cpus
    type: number
    default: 2
    mutable: true
    validation:
      min: 1
      max: 8
  - name: project
    validation:
      regex: "^[a-z]+$"
      error: Lowercase letters only.
  - name: tools
    type: list(string)
    default: [git, make]
  - name: debug
    type: bool
    default: false
agent:
  startup_script: echo hello
  env:
    GREETING: hi
    WORKERS: 3
  dir: project
  startup_timeout: 60
apps:
  - slug: web
    display_name: Web
    port: 8080
  - slug: docs
    url: https://example.com/docs
"#;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(FULL).unwrap();
        assert_eq!(m.parameters.len(), 5);
        assert_eq!(m.parameters[1].default.as_deref(), Some("2"));
        assert!(m.parameters[2].required());
        assert_eq!(
            m.parameters[3].default.as_deref(),
            Some(r#"["git","make"]"#)
        );
        assert_eq!(m.parameters[4].default.as_deref(), Some("false"));
        assert_eq!(m.agent.dir, "/home/coder/project");
        assert_eq!(m.agent.env.get("WORKERS").map(String::as_str), Some("3"));
        assert_eq!(m.agent.startup_timeout_secs, 60);
        assert_eq!(m.apps[0].url, "http://localhost:8080");
        assert_eq!(m.apps[1].display_name, "docs");
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(Manifest::parse("").unwrap(), Manifest::default());
    }

    #[test]
    fn syntax_and_type_errors_name_the_line() {
        let err = Manifest::parse("parameters:\n  - name: a\n    typo: 1\n").unwrap_err();
        assert!(err.0.contains("line 3"), "{err}");
        assert!(err.0.contains("typo"), "{err}");
        let err = Manifest::parse("agent:\n  startup_timeout: soon\n").unwrap_err();
        assert!(err.0.contains("line 2"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_parameter_and_line() {
        let src = "parameters:\n  - name: ok\n    default: x\n  - name: size\n    type: number\n    default: 20\n    validation:\n      max: 10\n";
        let err = Manifest::parse(src).unwrap_err();
        assert!(err.0.contains("\"size\" (line 4)"), "{err}");
        assert!(err.0.contains("maximum 10"), "{err}");
        for bad in [
            "parameters:\n  - name: a\n    type: float\n",
            "parameters:\n  - name: a\n  - name: A\n",
            "parameters:\n  - name: a\n    type: bool\n    validation:\n      regex: x\n",
            "parameters:\n  - name: a\n    validation:\n      regex: \"(\"\n",
            "apps:\n  - slug: Web\n    port: 1\n",
            "apps:\n  - slug: web\n",
            "apps:\n  - slug: web\n    url: ftp://x\n",
            "agent:\n  dir: /etc\n",
            "agent:\n  dir: ../x\n",
            "agent:\n  env:\n    HOME: /x\n",
            "agent:\n  startup_timeout: 0\n",
        ] {
            assert!(Manifest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_checked_against_their_parameter() {
        let m = Manifest::parse(FULL).unwrap();
        let p = |name: &str| {
            m.parameters
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .clone()
        };
        assert!(p("region").check("us").is_ok());
        assert!(p("region").check("mars").unwrap_err().contains("eu, us"));
        assert!(p("cpus").check("9").unwrap_err().contains("maximum 8"));
        assert!(p("cpus").check("x").unwrap_err().contains("not a number"));
        assert_eq!(
            p("project").check("A1").unwrap_err(),
            "Lowercase letters only."
        );
        assert!(p("tools").check("git").is_err());
        assert!(p("tools").check(r#"["a"]"#).is_ok());
        assert!(p("debug").check("yes").is_err());
    }

    #[test]
    fn resolution_uses_defaults_previous_values_and_guards_immutables() {
        let m = Manifest::parse(FULL).unwrap();
        let v = |n: &str, val: &str| ParameterValue {
            name: n.into(),
            value: val.into(),
        };
        let missing = resolve_parameters(&m.parameters, None, &[]).unwrap_err();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].field, "project");
        let first = resolve_parameters(&m.parameters, None, &[v("project", "abc")]).unwrap();
        assert_eq!(first.len(), 5);
        let again = resolve_parameters(&m.parameters, Some(&first), &[v("cpus", "4")]).unwrap();
        assert!(again.contains(&v("cpus", "4")));
        assert!(again.contains(&v("project", "abc")));
        let changed =
            resolve_parameters(&m.parameters, Some(&first), &[v("region", "us")]).unwrap_err();
        assert!(changed[0].detail.contains("immutable"));
        let unknown = resolve_parameters(&m.parameters, None, &[v("project", "a"), v("nope", "1")])
            .unwrap_err();
        assert!(unknown[0].detail.contains("no such parameter"));
        assert_eq!(parameter_env_name("my-param.x"), "CODER_PARAM_MY_PARAM_X");
    }
}

/// Property tests: any text, YAML-shaped noise and generated valid manifests. Whatever comes
/// in, the parser answers in bounded time with a manifest that survives its JSON round trip,
/// or with a message naming the file.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text, timed};

    /// Pieces of YAML (keys, nesting, anchors, aliases, tags, hostile scalars) joined into
    /// documents that get past the tokenizer and into the deserializer.
    fn yaml_noise() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("parameters:".to_owned()),
            Just("  - name: a".to_owned()),
            Just("    default: [x, {y: z}]".to_owned()),
            Just("    options:".to_owned()),
            Just("      - {name: n, value: v}".to_owned()),
            Just("agent:".to_owned()),
            Just("  env:".to_owned()),
            Just("    A: &x [1, 2, *x]".to_owned()),
            Just("    B: *x".to_owned()),
            Just("  startup_script: |".to_owned()),
            Just("apps:".to_owned()),
            Just("  - slug: web\n    port: 8080".to_owned()),
            Just("<<: *x".to_owned()),
            Just("--- !!binary".to_owned()),
            Just("? [complex, key]\n: value".to_owned()),
            (1usize..300).prop_map(|n| format!("x: {}{}", "[".repeat(n), "]".repeat(n))),
            (1usize..300).prop_map(|n| "- ".repeat(n)),
            hostile_text().prop_map(|t| format!("    description: {t:?}")),
            hostile_text(),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.join("\n"))
    }

    /// Valid manifests: parameters with defaults that pass their own rules.
    fn valid_manifest() -> impl Strategy<Value = String> {
        let parameter = (
            "[a-z][a-z0-9_-]{0,12}",
            prop_oneof![
                "[a-zA-Z0-9 ]{0,20}"
                    .prop_map(|d| format!("    type: string\n    default: \"{d}\"")),
                (0i64..100).prop_map(|n| format!("    type: number\n    default: {n}")),
                any::<bool>().prop_map(|b| format!("    type: bool\n    default: {b}")),
            ],
            "[a-zA-Z0-9 .,]{0,60}",
        )
            .prop_map(|(name, body, description)| {
                format!("  - name: {name}\n    description: \"{description}\"\n{body}\n")
            });
        // Parameter names compared as their variables must differ (`a-b` and `a_b` clash), or
        // the manifest is rightly refused.
        let parameters = prop::collection::vec(parameter, 0..6).prop_filter(
            "parameter names must differ",
            |parameters| {
                let names: Vec<String> = parameters
                    .iter()
                    .filter_map(|p| p.lines().next())
                    .map(|line| parameter_env_name(line.trim_start_matches("  - name: ")))
                    .collect();
                names.iter().collect::<std::collections::HashSet<_>>().len() == names.len()
            },
        );
        (parameters, "[ -~]{0,80}", 1u64..3600)
            .prop_map(|(parameters, script, timeout)| {
                format!(
                    "parameters:\n{}agent:\n  startup_script: {script:?}\n  startup_timeout: {timeout}\n",
                    parameters.concat()
                )
            })
    }

    fn check(source: &str) -> Result<(), TestCaseError> {
        match timed("Manifest::parse", || Manifest::parse(source))? {
            Ok(manifest) => {
                prop_assert_eq!(Manifest::from_json(&manifest.to_json()).unwrap(), manifest)
            }
            Err(e) => prop_assert!(e.0.starts_with(MANIFEST_FILE), "{}", e.0),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn any_text_is_refused_or_parsed_in_bounded_time(source in any::<String>()) {
            check(&source)?;
        }

        #[test]
        fn yaml_noise_is_refused_or_parsed_in_bounded_time(source in yaml_noise()) {
            check(&source)?;
        }

        #[test]
        fn valid_manifests_parse_and_round_trip(source in valid_manifest()) {
            let manifest = Manifest::parse(&source);
            prop_assert!(manifest.is_ok(), "{:?}\n{}", manifest, source);
            check(&source)?;
        }
    }
}
