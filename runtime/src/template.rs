//! Prompt templates: how a user's question is wrapped before tokenization.
//! Written into any `core::fmt::Write`, so they work without an allocator.

use core::fmt::{self, Write};

/// R1-Zero's training template (DeepSeek-R1 paper, Table 1; docs/method.md, the prompt).
pub const R1_ZERO: &str = "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. \
The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. \
The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, \
i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: {prompt}. Assistant:";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// The prompt as given.
    Raw,
    /// R1-Zero's "A conversation between User and Assistant…" template.
    R1Zero,
    /// Qwen's ChatML: `<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`.
    ChatMl,
    /// DeepSeek-R1's distilled students: `<｜User｜>…<｜Assistant｜><think>\n`.
    R1Distill,
}

impl Template {
    pub const NAMES: [&'static str; 4] = ["raw", "r1-zero", "chatml", "r1-distill"];

    pub fn from_name(name: &str) -> Option<Template> {
        match name {
            "raw" => Some(Template::Raw),
            "r1-zero" => Some(Template::R1Zero),
            "chatml" => Some(Template::ChatMl),
            "r1-distill" => Some(Template::R1Distill),
            _ => None,
        }
    }

    /// The template a tokenizer's special tokens imply: R1-distill if it has
    /// `<｜User｜>`, ChatML if it has `<|im_start|>`, else raw.
    pub fn detect(tokenizer: &crate::tokenizer::Tokenizer) -> Template {
        if tokenizer.token_id("<｜User｜>").is_some() {
            Template::R1Distill
        } else if tokenizer.token_id("<|im_start|>").is_some() {
            Template::ChatMl
        } else {
            Template::Raw
        }
    }

    /// Writes the wrapped prompt.
    pub fn render(self, prompt: &str, out: &mut impl Write) -> fmt::Result {
        match self {
            Template::Raw => out.write_str(prompt),
            Template::R1Zero => {
                let (before, after) = R1_ZERO.split_once("{prompt}").unwrap_or((R1_ZERO, ""));
                out.write_str(before)?;
                out.write_str(prompt)?;
                out.write_str(after)
            }
            Template::ChatMl => write!(out, "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"),
            Template::R1Distill => writeln!(out, "<｜begin▁of▁sentence｜><｜User｜>{prompt}<｜Assistant｜><think>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r1_zero_wraps_the_question() {
        let mut s = heapless::String::<1024>::new();
        Template::R1Zero.render("What is 2+2?", &mut s).unwrap();
        assert!(s.starts_with("A conversation between User and Assistant."));
        assert!(s.ends_with("User: What is 2+2?. Assistant:"));
        assert!(s.contains("<think> reasoning process here </think> <answer> answer here </answer>"));
    }

    #[test]
    fn chat_templates() {
        let mut s = heapless::String::<256>::new();
        Template::ChatMl.render("hi", &mut s).unwrap();
        assert_eq!(s.as_str(), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
        s.clear();
        Template::R1Distill.render("hi", &mut s).unwrap();
        assert!(s.ends_with("<｜Assistant｜><think>\n"));
        assert_eq!(Template::from_name("r1-zero"), Some(Template::R1Zero));
        assert_eq!(Template::from_name("nope"), None);
    }
}
