"""The words callkit itself says or tells the model (never the agent's own words).

One place for them, per language: ``phrases_for(interface)`` picks the interface's own
``Phrases`` when it has one, else the entry for its BCP-47 language (``es-MX`` falls back to
``es``), else English. Texts in parentheses are notes to the model, not for the caller's ears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from callkit.interface import CallInterface

__all__ = ["PHRASES", "Phrases", "phrases_for"]


@dataclass(frozen=True, slots=True)
class Phrases:
    """What the system says at the edges of a call; pass your own to ``CallInterface(phrases=...)``."""

    #: Spoken when ``max_call_duration_seconds`` is reached, before the hang-up.
    goodbye: str = "We've reached the time limit for this call. Thank you for calling, goodbye."
    #: Spoken (by the carrier) when a call cannot be connected at all, before the hang-up.
    unavailable: str = "Sorry, we cannot take your call right now. Please try again later. Goodbye."
    #: Spoken when the call cannot go on (a provider is down, the call state is gone), before the hang-up.
    apology: str = (
        "Sorry, we're having technical trouble and have to end the call. Please call back later. Goodbye."
    )
    #: Spoken for one turn the agent could not answer; the call goes on.
    turn_apology: str = "Sorry, I'm having trouble right now. Could you say that again?"
    #: Spoken while a slow model is awaited (once a turn, after ``run_turn``'s ``filler_after``).
    filler: str = "One moment, please."
    #: Spoken when the server shuts down under a live call (a deploy that outlasted the drain).
    shutdown: str = "Sorry, we have to end the call now. Please call back in a minute. Goodbye."
    #: To the model: a key the caller pressed (``{digit}`` is replaced).
    keypad: str = "(The caller pressed {digit} on the keypad.)"
    #: To the model: the caller went quiet after a false start; it should pick up again.
    reprompt: str = "(The caller stopped. Say what you were saying, briefly.)"
    #: To the model: the transfer it asked for did not go through.
    transfer_failed: str = "(The transfer did not go through. Tell the caller and offer other help.)"

    def keypad_text(self, digit: str) -> str:
        return self.keypad.format(digit=digit)


PHRASES: Final[dict[str, Phrases]] = {
    "en": Phrases(),
    "es": Phrases(
        goodbye="Hemos llegado al tiempo máximo de esta llamada. Gracias por llamar, adiós.",
        apology=(
            "Lo sentimos, tenemos problemas técnicos y debemos terminar la llamada. "
            "Por favor, llame más tarde. Adiós."
        ),
        turn_apology="Lo siento, estoy teniendo problemas. ¿Podría repetirlo?",
        filler="Un momento, por favor.",
        unavailable="Lo sentimos, no podemos atender su llamada ahora. Por favor, inténtelo más tarde. Adiós.",
        shutdown="Lo sentimos, tenemos que terminar la llamada. Por favor, llame en un minuto. Adiós.",
    ),
    "fr": Phrases(
        goodbye="Nous avons atteint la durée maximale de cet appel. Merci de votre appel, au revoir.",
        apology=(
            "Désolé, nous rencontrons un problème technique et devons mettre fin à l'appel. "
            "Merci de rappeler plus tard. Au revoir."
        ),
        turn_apology="Désolé, j'ai un problème. Pourriez-vous répéter ?",
        filler="Un instant, s'il vous plaît.",
        unavailable="Désolé, nous ne pouvons pas prendre votre appel. Merci de réessayer plus tard. Au revoir.",
        shutdown="Désolé, nous devons mettre fin à l'appel. Merci de rappeler dans une minute. Au revoir.",
    ),
    "de": Phrases(
        goodbye="Die maximale Gesprächsdauer ist erreicht. Vielen Dank für Ihren Anruf, auf Wiederhören.",
        apology=(
            "Entschuldigung, wir haben technische Probleme und müssen das Gespräch beenden. "
            "Bitte rufen Sie später wieder an. Auf Wiederhören."
        ),
        turn_apology="Entschuldigung, ich habe gerade ein Problem. Könnten Sie das wiederholen?",
        filler="Einen Moment bitte.",
        unavailable=(
            "Entschuldigung, wir können Ihren Anruf gerade nicht annehmen. "
            "Bitte versuchen Sie es später noch einmal. Auf Wiederhören."
        ),
        shutdown=(
            "Entschuldigung, wir müssen das Gespräch jetzt beenden. "
            "Bitte rufen Sie in einer Minute wieder an. Auf Wiederhören."
        ),
    ),
}


def phrases_for(interface: CallInterface) -> Phrases:
    """The interface's own phrases, else its language's (``xx-YY`` → ``xx``), else English."""
    if interface.phrases is not None:
        return interface.phrases
    language = interface.language
    return PHRASES.get(language) or PHRASES.get(language.split("-")[0].lower()) or PHRASES["en"]
