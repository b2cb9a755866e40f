//! How Codex is invoked: `codex exec --json` with the model and working directory, the prompt as the last
//! argument (after `--`, so a prompt starting with `-` is not read as a flag) and stdin closed, because
//! `codex exec` would otherwise read piped stdin as extra context. A follow-up resumes the thread id from
//! `thread.started`: `codex exec --json [options] resume <thread_id> -- <prompt>` (the options belong to
//! `exec`, before `resume`, which accepts none of its own).

use super::StartSpec;

pub(crate) fn args(spec: &StartSpec, prompt: &str, resume: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = vec!["exec".into(), "--json".into()];
    // An empty model leaves the choice to Codex's own configuration.
    if !spec.model.is_empty() {
        args.push("--model".into());
        args.push(spec.model.clone());
    }
    if let Some(cwd) = &spec.cwd {
        args.push("--cd".into());
        args.push(cwd.clone());
    }
    if let Some(thread) = resume {
        args.push("resume".into());
        args.push(thread.into());
    }
    args.push("--".into());
    args.push(prompt.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_resume_put_the_options_before_the_subcommand() {
        let spec = StartSpec {
            model: "gpt-5-codex".into(),
            cwd: Some("/work/p".into()),
            ..StartSpec::default()
        };
        assert_eq!(
            args(&spec, "-list files", None).join(" "),
            "exec --json --model gpt-5-codex --cd /work/p -- -list files"
        );
        assert_eq!(
            args(&spec, "again", Some("th-1")).join(" "),
            "exec --json --model gpt-5-codex --cd /work/p resume th-1 -- again"
        );
    }
}
