"""Prototype UIs (Gradio, Streamlit): they only know the Predictor protocol."""
