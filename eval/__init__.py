"""The eval suite: gold questions, metrics and reports (`rag eval`)."""
