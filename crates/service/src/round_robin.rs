//! Taking turns: each pick goes to the next of the choices at hand, so that work spreads over
//! the sessions that can do it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One rotation shared by every pick.
#[derive(Debug, Default)]
pub struct Turn {
    next: AtomicUsize,
}

impl Turn {
    /// The choice whose turn it is; `None` when there is none.
    pub fn pick<'a, T>(&self, choices: &'a [T]) -> Option<&'a T> {
        if choices.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        choices.get(turn % choices.len())
    }
}

/// One rotation per key (e.g. per tenant's pool).
#[derive(Debug, Default)]
pub struct Turns {
    next: Mutex<HashMap<String, usize>>,
}

impl Turns {
    /// The choice whose turn it is in `key`'s rotation; `None` when there is none.
    pub fn pick<'a, T>(&self, key: &str, choices: &'a [T]) -> Option<&'a T> {
        if choices.is_empty() {
            return None;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        // The key is copied only the first time it is seen.
        if !next.contains_key(key) {
            next.insert(key.to_owned(), 0);
        }
        let turn = next.get_mut(key)?;
        let picked = *turn % choices.len();
        *turn = turn.wrapping_add(1);
        choices.get(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::{Turn, Turns};

    #[test]
    fn one_rotation_goes_round() {
        let turn = Turn::default();
        let picks: Vec<_> = (0..4).map(|_| *turn.pick(&["a", "b", "c"]).unwrap()).collect();
        assert_eq!(picks, ["a", "b", "c", "a"]);
        assert_eq!(turn.pick::<&str>(&[]), None);
    }

    #[test]
    fn each_key_has_its_own_rotation() {
        let turns = Turns::default();
        assert_eq!(turns.pick("p1", &[1, 2]), Some(&1));
        assert_eq!(turns.pick("p1", &[1, 2]), Some(&2));
        assert_eq!(turns.pick("p2", &[1, 2]), Some(&1));
        assert_eq!(turns.pick("p1", &[1, 2]), Some(&1));
        assert_eq!(turns.pick::<i32>("p1", &[]), None);
    }
}
