//! The one output-path guard of the commands: nothing a command writes may land on one of its
//! inputs, inside an input folder it reads, or on another output of the same run.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// `path` made absolute and free of `.`/`..` and links, as far as it exists (the rest appended).
pub fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    // The longest existing prefix, canonicalised; the rest normalised lexically.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        match Path::new(&name).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(name),
        }
    }
    out
}

/// Refuses an output folder `output` that is the input folder `input` or lies inside it (the
/// maps would replace the images, or be read as images by the next run); `what` names the
/// command's flags in the message.
pub fn ensure_outside(output: &Path, input: &Path, what: &str) -> Result<()> {
    let (out, inp) = (resolve(output), resolve(input));
    if inp.is_dir() && out.starts_with(&inp) {
        bail!(
            "{}: {what} is {} {}; the outputs would mix with (or replace) the inputs: choose a \
             folder outside it",
            output.display(),
            if out == inp {
                "the input folder"
            } else {
                "inside the input folder"
            },
            input.display()
        );
    }
    Ok(())
}

/// Refuses a plan of `(source, outputs)` where two outputs are the same file, or an output is
/// one of the sources: every collision is listed.
pub fn ensure_distinct(plan: &[(PathBuf, Vec<PathBuf>)]) -> Result<()> {
    let sources: HashMap<PathBuf, &PathBuf> = plan.iter().map(|(s, _)| (resolve(s), s)).collect();
    let mut seen: HashMap<PathBuf, &PathBuf> = HashMap::new();
    let mut problems = Vec::new();
    for (source, outputs) in plan {
        for o in outputs {
            let key = resolve(o);
            if let Some(input) = sources.get(&key) {
                problems.push(format!(
                    "{}: the output for {} would overwrite this input",
                    input.display(),
                    source.display()
                ));
            }
            if let Some(first) = seen.insert(key, source) {
                problems.push(format!(
                    "{}: written for both {} and {}",
                    o.display(),
                    first.display(),
                    source.display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} output name collision(s); nothing was written:\n  {}\n(rename the inputs, or \
             predict them into separate folders)",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_inside_the_input_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        assert!(ensure_outside(&input, &input, "--output").is_err());
        assert!(ensure_outside(&input.join("maps"), &input, "--output").is_err());
        assert!(ensure_outside(&input.join("./maps/../x"), &input, "--output").is_err());
        assert!(ensure_outside(&dir.path().join("out"), &input, "--output").is_ok());
        assert!(ensure_outside(&input.join("../out"), &input, "--output").is_ok());
    }

    #[test]
    fn collisions_are_all_listed() {
        let plan = vec![
            (PathBuf::from("in/a.jpg"), vec![PathBuf::from("out/a.png")]),
            (PathBuf::from("in/a.png"), vec![PathBuf::from("out/a.png")]),
            (PathBuf::from("in/b.jpg"), vec![PathBuf::from("in/b.jpg")]),
        ];
        let msg = ensure_distinct(&plan).unwrap_err().to_string();
        assert!(msg.contains("2 output name collision"), "{msg}");
    }
}
