"""The page's look: a theme with locally served fonts (the page works offline) and the styles
of the answer, source and refusal blocks that ui/render.py emits."""

from __future__ import annotations

import gradio as gr


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue="indigo", neutral_hue="slate", radius_size="md")


CSS = """
.gradio-container { max-width: 1280px !important; width: 100%; margin: 0 auto; }
#rag-header h1 { margin-bottom: 0.1em; }
#rag-header p { margin-top: 0; color: var(--body-text-color-subdued); }
.rag-answer { line-height: 1.55; }
.rag-code { font-family: var(--font-mono); font-size: 0.9em; padding: 0.5em 0.75em; \
margin: 0.4em 0; border-radius: 4px; background: var(--background-fill-secondary); }
.rag-cite { color: var(--color-accent); font-weight: 600; font-size: 0.85em; white-space: nowrap; }
.rag-understood { font-size: 0.85em; color: var(--body-text-color-subdued); \
margin-bottom: 0.35em; font-style: italic; }
.rag-typing { color: var(--body-text-color-subdued); font-size: 0.85em; font-style: italic; }
.rag-wait { color: var(--body-text-color-subdued); font-style: italic; }
.rag-error { border-left: 4px solid var(--error-border-color, #ef4444); padding: 0.4em 0.8em;
  background: var(--error-background-fill, #fef2f2); border-radius: 6px; }
.rag-refusal { border: 1px dashed var(--border-color-primary); \
border-left: 4px solid var(--neutral-400);
  background: var(--neutral-50); color: var(--body-text-color-subdued); padding: 0.55em 0.9em; \
border-radius: 8px; }
.dark .rag-refusal { background: var(--neutral-800); }
.rag-refusal-title { font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em; \
font-size: 0.78em;
  margin-bottom: 0.2em; }
.rag-refusal-title::before { content: "∅ "; }
.rag-sources { margin-top: 0.7em; border-top: 1px solid var(--border-color-primary); \
padding-top: 0.4em; }
.rag-sources > summary { cursor: pointer; font-size: 0.85em; font-weight: 600; \
color: var(--body-text-color-subdued); }
.rag-source, .rag-hit { margin: 0.5em 0; padding: 0.45em 0.7em; border-radius: 6px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.rag-source-head, .rag-hit-head { font-size: 0.82em; margin-bottom: 0.25em; }
.rag-n { font-weight: 700; color: var(--color-accent); margin-right: 0.2em; }
.rag-title { font-weight: 600; }
.rag-section { font-style: italic; }
.rag-file, .rag-score { color: var(--body-text-color-subdued); font-family: var(--font-mono); \
font-size: 0.92em; }
.rag-score { margin-right: 0.6em; }
.rag-dot { color: var(--body-text-color-subdued); }
.rag-passage { font-size: 0.88em; line-height: 1.5; max-height: 14em; overflow-y: auto; }
mark.rag-support { background: #fde68a; color: inherit; padding: 0 0.1em; border-radius: 3px; }
.dark mark.rag-support { background: #854d0e; }
.rag-muted { color: var(--body-text-color-subdued); font-style: italic; }
#rag-chat { flex-grow: 1; }
"""
