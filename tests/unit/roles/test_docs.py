from roles.docs import README, render_variables, updated_readme
from roles.settings import ROLE_DEFAULTS


def test_readme_variables_section_is_current():
    text = README.read_text()
    assert updated_readme(text) == text, "README.md variables are stale: run `python -m roles.docs`"


def test_every_variable_is_documented_with_its_role_prefix():
    rendered = render_variables()
    for model in ROLE_DEFAULTS:
        for name, field in model.model_fields.items():
            assert name.startswith(model.prefix), f"{model.__name__}.{name}: expected prefix {model.prefix!r}"
            assert field.description, f"{model.__name__}.{name}: a variable needs a one-line description"
            assert f"`{name}`" in rendered
