//! The JavaScript engine behind `{"type": "text/javascript", ...}` scripts in `sync.json`.
//!
//! # Engine
//!
//! QuickJS, through `rquickjs` with its `parallel` feature. Why QuickJS: it is a complete
//! ES2020 engine in one C file (the sample's scripts and IDM users' scripts are plain ES5), it
//! builds with `cc` alone (no bindgen, no prebuilt binaries: about 26 s of C compilation once per
//! clean build on the 2-core CI machine), and it starts a context in microseconds. Why
//! `parallel`: it makes `Runtime` and `Context` `Send + Sync` behind one lock per runtime, so a
//! loaded [`SyncConfig`](super::SyncConfig) can sit in an `Arc` shared by tokio tasks. The lock
//! serialises evaluations of one engine; an evaluation of the sample's scripts costs a few
//! microseconds (see the report in the commit that added this file), far below what a recon
//! page or a Salesforce call costs, so one engine per loaded configuration is enough. A caller
//! that wants script evaluation on several cores at once loads one configuration per thread.
//!
//! # Semantics
//!
//! - A script is compiled **once**, when `sync.json` is loaded (a syntax error is a load error
//!   naming the file and JSON path), and run many times.
//! - A script's value is its *completion value*, as in IDM (Rhino evaluates the script as a
//!   program): `source.substring(0,8);` yields the substring. The source is compiled inside a
//!   block (`{ ... }`) so that top-level `let`/`const` are fresh on every run instead of failing
//!   as re-declarations on the second run.
//! - Each script has its own QuickJS context: the script's `globals` (and any extra keys of the
//!   script object, which IDM also copies into the scope) are set once in that context, and a
//!   script can never see another script's variables. The scope variables of one evaluation
//!   (`source`, `target`, ...) are set before the run and removed after it, so a variable not
//!   bound by the caller is a `ReferenceError`, as in IDM. Top-level `var`s of a script persist
//!   between runs of that script (they are re-assigned by the next run, so this is invisible
//!   to scripts that assign before they read).
//! - Scripts run in sloppy mode, like Rhino.
//! - Values cross as JSON, both ways. A result that JSON cannot represent (`undefined`, a
//!   function) is "no value" (`None`).
//! - A thrown exception is a [`ScriptError::Thrown`] carrying the script's message; an
//!   evaluation that runs past its time budget (100 ms by default) is interrupted and is a
//!   [`ScriptError::Timeout`]. Neither panics nor poisons the engine: the next evaluation runs
//!   normally.

use std::ffi::CString;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rquickjs::{Context, Ctx, Runtime, qjs};
use serde_json::{Map, Value};

/// Default time budget of one evaluation.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(100);
/// Memory one engine may allocate, for all its scripts together. A script that builds huge
/// strings fails with an out-of-memory error instead of taking the process down.
const MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Native stack a script may use: deep recursion becomes a `RangeError`, not a crash.
const STACK_LIMIT: usize = 512 * 1024;

/// Why an evaluation failed. Always about one object: the caller records it and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The script threw; `message` is what it threw (`TypeError: ...`, or the thrown value).
    #[error("{script}: {message}")]
    Thrown { script: String, message: String },
    /// The script ran longer than its budget and was interrupted.
    #[error("{script}: interrupted after {budget_ms} ms (time budget exceeded)")]
    Timeout { script: String, budget_ms: u128 },
    /// The script's result, or a value passed in, could not cross as JSON.
    #[error("{script}: {message}")]
    Value { script: String, message: String },
}

/// Why a script could not be compiled (reported by the configuration loader with its path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
}

/// The engine: one QuickJS runtime, its interrupt handler and time budget.
/// Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct ScriptEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    runtime: Runtime,
    /// When the running evaluation must stop, in nanoseconds after `epoch`; 0 = no evaluation.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    budget: Duration,
    /// Scripts compiled by this engine: tests check that loading compiles each script once
    /// and that evaluating compiles nothing.
    compilations: AtomicUsize,
}

impl fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("budget", &self.inner.budget)
            .field("compilations", &self.compilations())
            .finish()
    }
}

impl ScriptEngine {
    /// An engine with the default time budget per evaluation.
    pub fn new() -> Result<ScriptEngine, CompileError> {
        Self::with_budget(DEFAULT_BUDGET)
    }

    /// An engine whose evaluations are interrupted after `budget`.
    pub fn with_budget(budget: Duration) -> Result<ScriptEngine, CompileError> {
        let runtime = Runtime::new().map_err(|e| CompileError {
            message: format!("cannot start the JavaScript engine: {e}"),
        })?;
        runtime.set_memory_limit(MEMORY_LIMIT);
        runtime.set_max_stack_size(STACK_LIMIT);
        let deadline = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let handler_deadline = Arc::clone(&deadline);
        // QuickJS calls this every few thousand operations: a relaxed load and a clock read.
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let at = handler_deadline.load(Ordering::Relaxed);
            at != 0 && nanos_since(epoch) > at
        })));
        Ok(ScriptEngine {
            inner: Arc::new(EngineInner {
                runtime,
                deadline,
                epoch,
                budget,
                compilations: AtomicUsize::new(0),
            }),
        })
    }

    /// How many scripts this engine has compiled.
    pub fn compilations(&self) -> usize {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `source` once. `name` identifies the script in errors (a file name, or
    /// `sync.json /mappings/0/validSource`); `globals` are set once in the script's context.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        globals: &Map<String, Value>,
    ) -> Result<Script, CompileError> {
        let context = Context::full(&self.inner.runtime).map_err(|e| CompileError {
            message: format!("cannot create a JavaScript context: {e}"),
        })?;
        // A block keeps top-level `let`/`const` local to one run (see the module doc); the
        // newline before `}` ends a trailing `//` comment.
        let wrapped = CString::new(format!("{{{source}\n}}")).map_err(|_| CompileError {
            message: "the script contains a NUL character".to_owned(),
        })?;
        let file_name = CString::new(name.replace('\0', "")).map_err(|_| CompileError {
            message: "bad script name".to_owned(),
        })?;
        let code = context.with(|ctx| -> Result<qjs::JSValue, CompileError> {
            for (key, value) in globals {
                let js = to_js(&ctx, value).map_err(|e| CompileError {
                    message: e.to_string(),
                })?;
                ctx.globals()
                    .set(key.as_str(), js)
                    .map_err(|e| CompileError {
                        message: format!("cannot set global {key:?}: {e}"),
                    })?;
            }
            // SAFETY: `ctx` is a live context of this runtime and we hold its lock (inside
            // `with`); both C strings outlive the call. The result is owned by us: on success
            // it is the compiled function, kept in `Script::code` and freed in `Drop`.
            let raw = unsafe {
                qjs::JS_UpdateStackTop(qjs::JS_GetRuntime(ctx.as_raw().as_ptr()));
                qjs::JS_Eval(
                    ctx.as_raw().as_ptr(),
                    wrapped.as_ptr(),
                    wrapped.as_bytes().len() as _,
                    file_name.as_ptr(),
                    (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32,
                )
            };
            // SAFETY: reading the tag of a value we own.
            if unsafe { qjs::JS_IsException(raw) } {
                return Err(CompileError {
                    message: exception_message(&ctx),
                });
            }
            Ok(raw)
        })?;
        self.inner.compilations.fetch_add(1, Ordering::Relaxed);
        Ok(Script {
            code: CompiledCode { raw: code, context },
            engine: Arc::clone(&self.inner),
            name: name.to_owned(),
            globals: globals.clone(),
        })
    }

    /// Compiles a script file (the `"file"` form); the file name names the script in errors.
    pub fn compile_file(
        &self,
        path: &Path,
        globals: &Map<String, Value>,
    ) -> Result<Script, CompileError> {
        let source = std::fs::read_to_string(path).map_err(|e| CompileError {
            message: format!("cannot read script {}: {e}", path.display()),
        })?;
        self.compile(&path.display().to_string(), &source, globals)
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The compiled function and the context it belongs to. Only touched under the context's
/// lock (`Context::with`), which is what makes the raw value safe to share between threads.
struct CompiledCode {
    raw: qjs::JSValue,
    context: Context,
}

// SAFETY: `raw` is only read, duplicated or freed inside `context.with`, which holds the
// runtime's lock (the `parallel` feature); QuickJS values are safe to use from any thread
// under that lock.
unsafe impl Send for CompiledCode {}
// SAFETY: as for `Send`: no access to `raw` happens outside the runtime lock.
unsafe impl Sync for CompiledCode {}

impl Drop for CompiledCode {
    fn drop(&mut self) {
        let raw = self.raw;
        self.context.with(|ctx| {
            // SAFETY: we own one reference to `raw`, taken at compilation, and give it back
            // exactly once, under the runtime lock.
            unsafe { qjs::JS_FreeValue(ctx.as_raw().as_ptr(), raw) }
        });
    }
}

/// A compiled script, ready to run many times. `Send + Sync`.
pub struct Script {
    // Dropped before `engine`, so the runtime outlives the compiled code.
    code: CompiledCode,
    engine: Arc<EngineInner>,
    name: String,
    globals: Map<String, Value>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script").field("name", &self.name).finish()
    }
}

impl Script {
    /// The name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the script with `scope` bound as variables (each value crosses as JSON; `None`
    /// binds `null`, as IDM binds a Java `null`). Returns the completion value, `None` when it
    /// is `undefined` or not representable in JSON.
    pub fn eval(&self, scope: &[(&str, Option<&Value>)]) -> Result<Option<Value>, ScriptError> {
        self.run(scope, None).map(|(value, _)| value)
    }

    /// Runs the script like [`Script::eval`], then reads the variable `name` back: hooks such
    /// as `onCreate` change `target` in place. The variable's value is `None` when it is
    /// `undefined` or not representable in JSON.
    pub fn eval_reading(
        &self,
        scope: &[(&str, Option<&Value>)],
        name: &str,
    ) -> Result<Option<Value>, ScriptError> {
        self.run(scope, Some(name)).map(|(_, read)| read)
    }

    /// The completion value, and the variable `read` after the run.
    fn run(
        &self,
        scope: &[(&str, Option<&Value>)],
        read: Option<&str>,
    ) -> Result<(Option<Value>, Option<Value>), ScriptError> {
        let inner = &self.engine;
        self.code.context.with(|ctx| {
            let globals = ctx.globals();
            for (name, value) in scope {
                let js = match value {
                    Some(value) => {
                        to_js(&ctx, value).map_err(|e| self.value_error(e.to_string()))?
                    }
                    None => rquickjs::Value::new_null(ctx.clone()),
                };
                globals
                    .set(*name, js)
                    .map_err(|e| self.value_error(format!("cannot bind {name}: {e}")))?;
            }
            let budget_nanos = u64::try_from(inner.budget.as_nanos()).unwrap_or(u64::MAX);
            inner.deadline.store(
                nanos_since(inner.epoch).saturating_add(budget_nanos).max(1),
                Ordering::Relaxed,
            );
            // SAFETY: under the runtime lock; `JS_EvalFunction` consumes one reference, so we
            // hand it a duplicate and keep ours. The returned value is owned by the
            // `rquickjs::Value` that wraps it.
            let result = unsafe {
                let c = ctx.as_raw().as_ptr();
                qjs::JS_UpdateStackTop(qjs::JS_GetRuntime(c));
                let raw = qjs::JS_EvalFunction(c, qjs::JS_DupValue(c, self.code.raw));
                rquickjs::Value::from_raw(ctx.clone(), raw)
            };
            let timed_out = nanos_since(inner.epoch) > inner.deadline.load(Ordering::Relaxed);
            inner.deadline.store(0, Ordering::Relaxed);
            let outcome = if result.is_exception() {
                let message = exception_message(&ctx);
                if timed_out && message.contains("interrupted") {
                    Err(ScriptError::Timeout {
                        script: self.name.clone(),
                        budget_ms: inner.budget.as_millis(),
                    })
                } else {
                    Err(ScriptError::Thrown {
                        script: self.name.clone(),
                        message,
                    })
                }
            } else {
                let crossed = |js| from_js(&ctx, js).map_err(|e| self.value_error(e.to_string()));
                crossed(result).and_then(|value| {
                    let read = match read {
                        Some(name) => match globals.get::<_, rquickjs::Value>(name) {
                            Ok(js) => crossed(js)?,
                            Err(e) => {
                                return Err(self.value_error(format!("cannot read {name}: {e}")));
                            }
                        },
                        None => None,
                    };
                    Ok((value, read))
                })
            };
            // Unbind the scope (restoring a global it shadowed), so the next run starts clean.
            for (name, _) in scope {
                let _ = match self.globals.get(*name) {
                    Some(value) => match to_js(&ctx, value) {
                        Ok(js) => globals.set(*name, js),
                        Err(_) => globals.remove(*name),
                    },
                    None => globals.remove(*name),
                };
            }
            outcome
        })
    }

    fn value_error(&self, message: String) -> ScriptError {
        ScriptError::Value {
            script: self.name.clone(),
            message,
        }
    }
}

/// Why a value could not cross, as JSON, between Rust and JavaScript.
#[derive(Debug, thiserror::Error)]
enum CrossingError {
    #[error("{0}")]
    Unserializable(serde_json::Error),
    #[error("value does not cross to JavaScript: {0}")]
    Unparsable(rquickjs::Error),
    #[error("result is not a string: {0}")]
    NotAString(rquickjs::Error),
    /// The exception `JSON.stringify` threw, as [`exception_message`] spells it.
    #[error("result cannot be converted to JSON: {0}")]
    Unstringifiable(String),
    #[error("result is not JSON: {0}")]
    NotJson(serde_json::Error),
}

fn to_js<'js>(ctx: &Ctx<'js>, value: &Value) -> Result<rquickjs::Value<'js>, CrossingError> {
    let text = serde_json::to_string(value).map_err(CrossingError::Unserializable)?;
    ctx.json_parse(text).map_err(CrossingError::Unparsable)
}

fn from_js<'js>(
    ctx: &Ctx<'js>,
    value: rquickjs::Value<'js>,
) -> Result<Option<Value>, CrossingError> {
    if value.is_undefined() {
        return Ok(None);
    }
    let text = match ctx.json_stringify(value) {
        Ok(Some(text)) => text.to_string().map_err(CrossingError::NotAString)?,
        Ok(None) => return Ok(None),
        Err(_) => return Err(CrossingError::Unstringifiable(exception_message(ctx))),
    };
    // Where every script result enters Rust: strings a cut left half an emoji in are repaired.
    serde_json::from_str(&super::well_formed::repair(&text))
        .map(Some)
        .map_err(CrossingError::NotJson)
}

/// The pending exception as `Name: message` (an `Error`), or the thrown value as text.
fn exception_message(ctx: &Ctx<'_>) -> String {
    let thrown = ctx.catch();
    if let Some(object) = thrown.as_object() {
        let name: Option<String> = object.get("name").ok();
        let message: Option<String> = object.get("message").ok();
        if let Some(message) = message {
            return match name {
                Some(name) if !name.is_empty() => format!("{name}: {message}"),
                _ => message,
            };
        }
    }
    if let Some(s) = thrown.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    match ctx.json_stringify(thrown) {
        Ok(Some(s)) => s.to_string().unwrap_or_else(|_| "exception".to_owned()),
        _ => "exception".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engine() -> ScriptEngine {
        ScriptEngine::new().unwrap()
    }

    #[test]
    fn completion_value_is_the_result() {
        let e = engine();
        let s = e
            .compile("t", "source.substring(0,8);", &Map::new())
            .unwrap();
        let v = json!("Christopher");
        assert_eq!(
            s.eval(&[("source", Some(&v))]).unwrap(),
            Some(json!("Christop"))
        );
        let v = json!("Al");
        assert_eq!(s.eval(&[("source", Some(&v))]).unwrap(), Some(json!("Al")));
    }

    #[test]
    fn objects_cross_as_json() {
        let e = engine();
        let s = e
            .compile(
                "t",
                r#"source.Email.substring(0,8) !== "autoproc""#,
                &Map::new(),
            )
            .unwrap();
        let user = json!({"Email": "autoproc@00d.example"});
        assert_eq!(
            s.eval(&[("source", Some(&user))]).unwrap(),
            Some(json!(false))
        );
        let user = json!({"Email": "bjensen@example.com"});
        assert_eq!(
            s.eval(&[("source", Some(&user))]).unwrap(),
            Some(json!(true))
        );
        let s = e
            .compile("t", "({a: [1, 'x', null], b: {c: true}})", &Map::new())
            .unwrap();
        assert_eq!(
            s.eval(&[]).unwrap(),
            Some(json!({"a": [1, "x", null], "b": {"c": true}}))
        );
    }

    #[test]
    fn strings_cut_inside_an_emoji_come_back_as_valid_unicode() {
        let e = engine();
        let alias = e
            .compile("alias", "source.givenName.substring(0,8)", &Map::new())
            .unwrap();
        let user = json!({"givenName": "a😀😀😀😀"});
        assert_eq!(
            alias.eval(&[("source", Some(&user))]).unwrap(),
            Some(json!("a😀😀😀"))
        );
        let middle = e
            .compile(
                "m",
                "'x' + source.givenName.substring(1, 2) + 'y'",
                &Map::new(),
            )
            .unwrap();
        assert_eq!(
            middle.eval(&[("source", Some(&user))]).unwrap(),
            Some(json!("x\u{fffd}y"))
        );
    }

    #[test]
    fn let_and_const_survive_many_runs() {
        let e = engine();
        let s = e
            .compile("t", "let x = source + 1; const y = x * 2; y", &Map::new())
            .unwrap();
        for i in 0..3 {
            let v = json!(i);
            assert_eq!(
                s.eval(&[("source", Some(&v))]).unwrap(),
                Some(json!((i + 1) * 2))
            );
        }
    }

    #[test]
    fn unbound_variable_is_a_reference_error() {
        let e = engine();
        let s = e.compile("t", "source.x", &Map::new()).unwrap();
        let v = json!({"x": 1});
        assert_eq!(s.eval(&[("source", Some(&v))]).unwrap(), Some(json!(1)));
        // The previous run's `source` is gone.
        let err = s.eval(&[]).unwrap_err();
        assert!(
            matches!(&err, ScriptError::Thrown { message, .. } if message.contains("ReferenceError")),
            "{err}"
        );
    }

    #[test]
    fn globals_are_in_scope_and_scope_wins() {
        let e = engine();
        let globals = json!({"prefix": "x-", "source": "global"});
        let s = e
            .compile("t", "prefix + source", globals.as_object().unwrap())
            .unwrap();
        let v = json!("a");
        assert_eq!(s.eval(&[("source", Some(&v))]).unwrap(), Some(json!("x-a")));
        assert_eq!(s.eval(&[]).unwrap(), Some(json!("x-global")));
    }

    #[test]
    fn throw_is_a_typed_error_with_the_message() {
        let e = engine();
        let s = e
            .compile(
                "t.js",
                "throw new Error('no mail for ' + source)",
                &Map::new(),
            )
            .unwrap();
        let v = json!("bob");
        assert_eq!(
            s.eval(&[("source", Some(&v))]).unwrap_err(),
            ScriptError::Thrown {
                script: "t.js".to_owned(),
                message: "Error: no mail for bob".to_owned()
            }
        );
        let s = e.compile("t", "throw 'plain'", &Map::new()).unwrap();
        assert!(
            matches!(s.eval(&[]), Err(ScriptError::Thrown { message, .. }) if message == "plain")
        );
    }

    #[test]
    fn syntax_error_at_compile_time() {
        let e = engine();
        let err = e
            .compile("t", "source.substring(0,", &Map::new())
            .unwrap_err();
        assert!(err.message.contains("SyntaxError"), "{err}");
        assert_eq!(e.compilations(), 0);
    }

    #[test]
    fn runaway_script_is_interrupted_and_the_engine_recovers() {
        let e = ScriptEngine::with_budget(Duration::from_millis(50)).unwrap();
        let s = e.compile("loop", "while (true) {}", &Map::new()).unwrap();
        let started = Instant::now();
        let err = s.eval(&[]).unwrap_err();
        assert!(matches!(err, ScriptError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let ok = e.compile("ok", "1 + 1", &Map::new()).unwrap();
        assert_eq!(ok.eval(&[]).unwrap(), Some(json!(2)));
        // A try/catch in the script cannot swallow the interrupt.
        let s = e
            .compile(
                "catch",
                "try { for(;;){} } catch (e) { 'caught' }",
                &Map::new(),
            )
            .unwrap();
        assert!(matches!(s.eval(&[]), Err(ScriptError::Timeout { .. })));
    }

    #[test]
    fn deep_recursion_is_an_error_not_a_crash() {
        let e = engine();
        let s = e
            .compile(
                "rec",
                "function f(n) { return f(n + 1) + 1; } f(0)",
                &Map::new(),
            )
            .unwrap();
        assert!(matches!(s.eval(&[]), Err(ScriptError::Thrown { .. })));
    }

    #[test]
    fn a_value_json_cannot_hold_is_a_value_error() {
        let e = engine();
        let cyclic = |script: &str, err: ScriptError| match err {
            ScriptError::Value { script: s, message } => {
                assert_eq!(s, script);
                assert!(
                    message.starts_with("result cannot be converted to JSON: TypeError"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        };
        let s = e
            .compile("result", "var o = {}; o.self = o; o", &Map::new())
            .unwrap();
        cyclic("result", s.eval(&[]).unwrap_err());
        let s = e
            .compile("read", "target = {}; target.self = target; 1", &Map::new())
            .unwrap();
        cyclic(
            "read",
            s.eval_reading(&[("target", None)], "target").unwrap_err(),
        );
    }

    #[test]
    fn undefined_and_functions_are_no_value() {
        let e = engine();
        let s = e.compile("t", "undefined", &Map::new()).unwrap();
        assert_eq!(s.eval(&[]).unwrap(), None);
        let s = e.compile("t", "(function () {})", &Map::new()).unwrap();
        assert_eq!(s.eval(&[]).unwrap(), None);
        let s = e.compile("t", "var a = 1;", &Map::new()).unwrap();
        assert_eq!(s.eval(&[]).unwrap(), None);
        let s = e.compile("t", "null", &Map::new()).unwrap();
        assert_eq!(s.eval(&[]).unwrap(), Some(Value::Null));
    }

    #[test]
    fn scripts_are_send_and_sync_and_run_from_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Script>();
        assert_send_sync::<ScriptEngine>();
        let e = engine();
        let s = Arc::new(e.compile("t", "source * 2", &Map::new()).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for j in 0..200 {
                        let v = json!(i * 1000 + j);
                        assert_eq!(
                            s.eval(&[("source", Some(&v))]).unwrap(),
                            Some(json!((i * 1000 + j) * 2))
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(e.compilations(), 1);
    }
}
