//! The strength rule of a fresh instance's superuser password ([`PASSWORD_RULE`]).

/// Longest superuser password of a fresh instance, in characters.
pub const MAX_PASSWORD: usize = 1024;

/// Shortest superuser password of a fresh instance, in characters (the strength rule,
/// [`PASSWORD_RULE`]).
pub const MIN_PASSWORD: usize = 8;

/// From this many characters on, a fresh instance's password (a passphrase) needs only 2 of the
/// 4 character classes of [`PASSWORD_RULE`], not 3.
pub const PASSPHRASE_LENGTH: usize = 16;

/// The strength rule of a fresh instance's superuser password, as Azure Database for PostgreSQL
/// Flexible Server words its own (8–128 characters from 3 of 4 categories), with a longer bound, a
/// passphrase allowance and the refusal of the guessable passwords that fit the classes anyway
/// (a common password with digits or symbols around it, one character repeated, a run like the
/// alphabet's): whoever holds the password is the instance's superuser, so it must not be
/// guessable. A restore uses its source image's password and is not re-checked.
pub const PASSWORD_RULE: &str = "at least 8 characters from at least 3 of these 4 classes: uppercase letters, \
                                 lowercase letters, digits, other characters (a passphrase of 16 or more \
                                 characters needs 2 classes); not one of the most common choices with digits \
                                 or symbols around it; no one character making up more than half of it; and not \
                                 mostly one run of consecutive letters or digits, ascending or descending";

/// How every reason of a password refused by [`password_weakness`] for anything but its length
/// begins (the REST API answers it with 422 `weak_password`: a JSON schema cannot express it).
pub const WEAK_PASSWORD: &str = "too weak";

/// The bases of the most common passwords, lowercase and space-separated, as they remain once the digits and symbols
/// around them are stripped (`Password1!` is `password`). Not a breach corpus: the few that
/// guessing starts with, which the character classes alone let through.
const COMMON_BASES: &str = "password passw0rd p@ssw0rd p@ssword pass passwd qwerty qwertyuiop qwertz \
     azerty asdfgh asdf zxcvbn letmein welcome admin administrator root toor postgres postgresql changeme secret \
     iloveyou monkey dragon abc master login default guest test superuser sunshine princess football baseball \
     shadow trustno whatever freedom starwars hello database";

/// What is wrong with `password` under [`PASSWORD_RULE`], if anything: shorter than
/// [`MIN_PASSWORD`] characters; or (the reason then begins with [`WEAK_PASSWORD`]) from too few
/// character classes, a common password (a built-in list, compared case-insensitively once the
/// digits and symbols at its ends are stripped), one character (case-insensitively) making up
/// more than half of it, or one ascending or descending run of consecutive characters (`abcdef`,
/// `987654`, case-insensitively) making up more than half of it. Uppercase and lowercase mean
/// ASCII letters; every other character that is not an ASCII digit (punctuation, space, any
/// non-ASCII letter) is "other". A reason never repeats the password.
///
/// ```
/// use toygres_core::request::password_weakness;
/// assert!(password_weakness("Tr0ub4dor&3").is_none());
/// assert!(password_weakness("correct horse battery staple").is_none());
/// assert!(password_weakness("password1").unwrap().contains("3 of these 4 classes"));
/// assert!(password_weakness("Password1!").unwrap().contains("most common choices"));
/// assert!(password_weakness("Pw-1").unwrap().contains("at least 8"));
/// ```
pub fn password_weakness(password: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return Some(format!("shorter than {MIN_PASSWORD} characters; use {PASSWORD_RULE}"));
    }
    let weak = |why: &str| Some(format!("{WEAK_PASSWORD}: {why}; use {PASSWORD_RULE}"));
    let has = |class: fn(&char) -> bool| password.chars().any(|c| class(&c));
    let other = |c: &char| !c.is_ascii_alphanumeric();
    let classes = [has(char::is_ascii_uppercase), has(char::is_ascii_lowercase), has(char::is_ascii_digit), has(other)];
    let classes = classes.into_iter().filter(|&c| c).count();
    let needed = if length >= PASSPHRASE_LENGTH { 2 } else { 3 };
    if classes < needed {
        return weak(&format!("it has {classes} character class(es)"));
    }
    let lower: Vec<char> = password.chars().map(|c| c.to_ascii_lowercase()).collect();
    let base: String = {
        let text: String = lower.iter().collect();
        text.trim_matches(|c: char| !c.is_alphabetic()).to_string()
    };
    if COMMON_BASES.split_whitespace().any(|common| base == common) {
        return weak("it is one of the most common choices with digits or symbols around it");
    }
    let most = lower.iter().map(|c| lower.iter().filter(|d| *d == c).count()).max().unwrap_or(0);
    if most * 2 > length {
        return weak("one character makes up more than half of it");
    }
    if longest_run(&lower) * 2 > length {
        return weak("it is mostly one run of consecutive characters");
    }
    None
}

/// The length of the longest run of `chars` in which each character's code is the previous
/// one's plus 1 (ascending) or minus 1 (descending), the same step throughout.
fn longest_run(chars: &[char]) -> usize {
    let mut longest = chars.len().min(1);
    for step in [1i64, -1] {
        let mut run = 1;
        for pair in chars.windows(2) {
            run = if pair[1] as i64 - pair[0] as i64 == step { run + 1 } else { 1 };
            longest = longest.max(run);
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_passwords_are_refused_with_what_is_required() {
        for weak in [
            "aaaaaaaaaaaaaaa1",
            "AAAAaaaa1!",
            "abcdefghijklmno1",
            "ABCDEFgh1!",
            "12345678Ab",
            "Zyxwvuts1!",
            "98765432Xy",
            "Password1",
            "Passw0rd",
            "P@ssw0rd!",
            "!!Qwerty123",
            "Letmein2024",
            "Welcome1!",
            "Admin123!",
            "Postgres1",
            "ChangeMe99",
            "Secret-123",
            "ILoveYou1",
            "Monkey12!",
            "Dragon#1",
            "Abc12345!",
        ] {
            let reason = password_weakness(weak).unwrap_or_else(|| panic!("{weak:?} accepted"));
            assert!(reason.starts_with(WEAK_PASSWORD), "{weak:?}: {reason}");
            assert!(reason.ends_with(PASSWORD_RULE), "{weak:?}: the reason says what is required: {reason}");
            assert!(!reason.contains(weak), "the reason never repeats the password: {reason}");
        }
    }

    #[test]
    fn strong_passwords_and_passphrases_pass() {
        for strong in [
            "Tr0ub4dor&3",
            "pass-word-1",
            "PASS WORD 1",
            "correct horse battery staple",
            "Postgres-Orders-2026!",
            "xK9#mQ2$vL",
            "Abc-Xyz-7",
            &"Aa1-".repeat(256),
        ] {
            assert_eq!(password_weakness(strong), None, "{strong:?}");
        }
    }

    #[test]
    fn runs_are_counted_one_direction_at_a_time() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(longest_run(&chars("")), 0);
        assert_eq!(longest_run(&chars("x")), 1);
        assert_eq!(longest_run(&chars("abcba")), 3);
        assert_eq!(longest_run(&chars("x9876543")), 7);
        assert_eq!(longest_run(&chars("acegik")), 1);
    }
}
