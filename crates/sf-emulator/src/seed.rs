//! The starting org: N generated users (deterministic from a seed), or the users of a JSON file,
//! with the access catalog (`crate::access::catalog`).

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::access::catalog::{self, AccessConfig};
use super::errors::EmulatorError;
use super::org::{Org, Profile, SaveKind, set_name, stamp};
use super::rng::SplitMix;
use super::schema::{Record, Val, idx};

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Ronald",
    "Stephanie",
    "Edward",
    "Rebecca",
    "Jason",
    "Sharon",
    "Jeffrey",
    "Laura",
    "Ryan",
    "Cynthia",
    "Jacob",
    "Kathleen",
    "Gary",
    "Amy",
    "Nicholas",
    "Angela",
    "Eric",
    "Shirley",
    "Jonathan",
    "Anna",
    "Stephen",
    "Brenda",
    "Larry",
    "Pamela",
    "Justin",
    "Emma",
    "Scott",
    "Nicole",
    "Brandon",
    "Helen",
    "Aisha",
    "Mateo",
    "Sofia",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Arjun",
    "Olga",
    "Lars",
    "Ingrid",
    "Chloé",
    "François",
    "Zoë",
    "José",
    "Siobhan",
    "Bjørn",
    "Łukasz",
    "Fatima",
    "Omar",
    "Mei",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
    "Richardson",
    "O'Brien",
    "Müller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Suzuki",
    "Kowalski",
    "Novak",
    "Larsen",
    "Johansson",
    "Van der Berg",
    "García-López",
    "Nakamura",
    "Patel",
    "Singh",
    "Chen",
    "Wang",
    "Ivanova",
    "Okafor",
];

const TITLES: &[&str] = &[
    "Engineer",
    "Sales Representative",
    "Account Executive",
    "Support Agent",
    "Manager",
    "Analyst",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Support",
    "Finance",
    "Marketing",
    "Operations",
];

fn pick<'a>(rng: &mut SplitMix, list: &'a [&'a str]) -> &'a str {
    // `below(n)` is under `n`: only an empty list has nothing to pick.
    list.get(rng.below(list.len() as u64) as usize)
        .copied()
        .unwrap_or_default()
}

/// ASCII-folds a name for use in a username or alias (usernames must be email-shaped).
fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'é' | 'è' | 'É' => Some('e'),
            'ç' => Some('c'),
            'ø' | 'Ø' | 'ö' => Some('o'),
            'ü' => Some('u'),
            'ł' | 'Ł' => Some('l'),
            'ë' => Some('e'),
            _ => None,
        })
        .collect()
}

fn base_record(org: &Org, profile: &str) -> Record {
    let mut rec = Record::default();
    rec[idx::PROFILE_ID] = Val::Str(org.profile_id(profile).unwrap_or_default().to_owned());
    rec[idx::TIME_ZONE] = Val::Str("America/Los_Angeles".to_owned());
    rec[idx::LOCALE] = Val::Str("en_US".to_owned());
    rec[idx::EMAIL_ENCODING] = Val::Str("UTF-8".to_owned());
    rec[idx::LANGUAGE] = Val::Str("en_US".to_owned());
    rec[idx::IS_ACTIVE] = Val::Bool(true);
    rec[idx::USER_TYPE] = Val::Str("Standard".to_owned());
    rec
}

/// Generates an org of `n` users: user 1 is the integration user (System Administrator), one is the
/// "Automated Process" user (Email `autoproc@…`), about 5% are inactive; names are realistic and
/// usernames unique (`first.last.N@example.org`).
#[cfg(test)]
pub fn generate(n: usize, seed: u64, now: DateTime<Utc>) -> Org {
    generate_with(n, seed, now, &AccessConfig::default())
}

/// [`generate`], with the extra catalog, assignments and memberships `access` asks for.
pub fn generate_with(n: usize, seed: u64, now: DateTime<Utc>, access: &AccessConfig) -> Org {
    let mut rng = SplitMix::new(seed);
    let mut org = Org::new(1 + seed % 1000);
    let profiles: Vec<&str> = vec![
        "Standard User",
        "Standard User",
        "Standard User",
        "Chatter Free User",
        "Read Only",
    ];
    let org_created = now - Duration::days(400);
    let mut admin_id = String::new();
    for i in 0..n {
        let id = org.next_id(super::ids::USER_PREFIX);
        if admin_id.is_empty() {
            admin_id = id.clone();
        }
        let created = org_created + Duration::seconds(rng.below(360 * 86_400) as i64);
        let modified = created + Duration::seconds(rng.below(30 * 86_400) as i64);
        let modified = modified.min(now);
        // The Automated Process user is the last one (an org of one user has only the integration user).
        let rec = if i + 1 == n && n > 1 {
            automated_process(&org)
        } else if i == 0 {
            let mut r = base_record(&org, "System Administrator");
            r[idx::FIRST_NAME] = Val::Str("Integration".to_owned());
            r[idx::LAST_NAME] = Val::Str("User".to_owned());
            r[idx::USERNAME] = Val::Str(format!(
                "integration.user@{}.example.org",
                org.org_id.to_lowercase()
            ));
            r[idx::EMAIL] = Val::Str("integration.user@example.org".to_owned());
            r[idx::ALIAS] = Val::Str("integ".to_owned());
            r[idx::COMMUNITY_NICKNAME] = Val::Str("integration.user".to_owned());
            r
        } else {
            let first = pick(&mut rng, FIRST_NAMES);
            let last = pick(&mut rng, LAST_NAMES);
            let slug = format!("{}.{}.{i}", ascii_slug(first), ascii_slug(last));
            let mut r = base_record(&org, pick(&mut rng, &profiles));
            r[idx::FIRST_NAME] = Val::Str(first.to_owned());
            r[idx::LAST_NAME] = Val::Str(last.to_owned());
            r[idx::USERNAME] = Val::Str(format!("{slug}@example.org"));
            r[idx::EMAIL] = Val::Str(format!("{slug}@mail.example.com"));
            let alias: String = format!(
                "{}{}",
                ascii_slug(first).chars().next().unwrap_or('u'),
                ascii_slug(last)
            )
            .chars()
            .take(8)
            .collect();
            r[idx::ALIAS] = Val::Str(alias);
            r[idx::COMMUNITY_NICKNAME] = Val::Str(slug.chars().take(40).collect());
            r[idx::TITLE] = Val::Str(pick(&mut rng, TITLES).to_owned());
            r[idx::DEPARTMENT] = Val::Str(pick(&mut rng, DEPARTMENTS).to_owned());
            r[idx::COMPANY_NAME] = Val::Str("Example Corp".to_owned());
            r[idx::EMPLOYEE_NUMBER] = Val::Str(format!("E{:06}", i));
            if rng.unit() < 0.05 {
                r[idx::IS_ACTIVE] = Val::Bool(false);
            }
            r
        };
        let mut rec = rec;
        rec[idx::ID] = Val::Str(id);
        set_name(&mut rec);
        stamp(&mut rec, created, &admin_id, true);
        stamp(&mut rec, modified, &admin_id, false);
        org.push_user(rec);
    }
    catalog::extend(&mut org, access, seed, now);
    org.sync_all_profile_assignments(now);
    org
}

/// The "Automated Process" user every org has; the sample's `validSource` filters it out by Email.
fn automated_process(org: &Org) -> Record {
    let mut r = base_record(org, "Minimum Access - Salesforce");
    let org15 = org.org_id.get(..15).unwrap_or(&org.org_id).to_lowercase();
    r[idx::LAST_NAME] = Val::Str("Automated Process".to_owned());
    r[idx::USERNAME] = Val::Str(format!("autoproc@{org15}"));
    r[idx::EMAIL] = Val::Str(format!("autoproc@{org15}.example.org"));
    r[idx::ALIAS] = Val::Str("autoproc".to_owned());
    r[idx::COMMUNITY_NICKNAME] = Val::Str("autoproc".to_owned());
    r[idx::USER_TYPE] = Val::Str("AutomatedProcess".to_owned());
    r
}

/// Loads users from a JSON file: an array of user objects, or `{"users":[…]}`. Each object uses
/// `User` field names; `ProfileId` may be a profile id or a profile name; missing locale fields get
/// the sample's defaults; `Id` is kept when it is a valid `005` id, else one is assigned.
pub fn from_file(path: &Path, now: DateTime<Utc>) -> Result<Org, EmulatorError> {
    let bad = |reason: String| EmulatorError::BadFile {
        path: path.to_owned(),
        what: "seed",
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let list = match json {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove("users") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(bad(
                    "expected an array of users or {\"users\":[…]}".to_owned()
                ));
            }
        },
        _ => {
            return Err(bad(
                "expected an array of users or {\"users\":[…]}".to_owned()
            ));
        }
    };
    let mut org = Org::new(1);
    let admin: Vec<Profile> = org.profiles.clone();
    for (n, item) in list.into_iter().enumerate() {
        let Value::Object(mut obj) = item else {
            return Err(bad(format!("user #{n} is not an object")));
        };
        let given_id = obj.remove("Id").and_then(|v| v.as_str().map(str::to_owned));
        for k in [
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "CreatedById",
            "LastModifiedById",
            "Name",
            "UserType",
        ] {
            obj.remove(k);
        }
        if let Some(Value::String(p)) = obj.get("ProfileId")
            && let Some(found) = admin.iter().find(|x| x.name.eq_ignore_ascii_case(p))
        {
            obj.insert("ProfileId".to_owned(), Value::String(found.id.clone()));
        }
        for (k, d) in [
            ("TimeZoneSidKey", "America/Los_Angeles"),
            ("LocaleSidKey", "en_US"),
            ("EmailEncodingKey", "UTF-8"),
            ("LanguageLocaleKey", "en_US"),
            ("ProfileId", admin.get(1).map_or("", |p| p.id.as_str())),
        ] {
            obj.entry(k.to_owned())
                .or_insert_with(|| Value::String(d.to_owned()));
        }
        let changes = Org::parse_changes(&obj, SaveKind::Create)
            .map_err(|e| bad(format!("user #{n}: {}", e.message)))?;
        let actor = org.integration_user_id();
        org.create(changes, now, &actor)
            .map_err(|e| bad(format!("user #{n}: {}", e.message)))?;
        if let Some(id) = given_id.filter(|id| {
            super::ids::has_prefix(id, super::ids::USER_PREFIX) && org.find(id).is_none()
        }) && let Some(id18) = super::ids::canonical_15(&id).and_then(|c| super::ids::to_18(&c))
            && let Some(mut rec) = org.pop_user()
        {
            // The user just created, the newest, takes the given id.
            rec[idx::ID] = Val::Str(id18);
            org.push_user(rec);
        }
    }
    // A user whose id was replaced above lost its profile assignment with its first record.
    org.sync_all_profile_assignments(now);
    Ok(org)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_org_has_the_promised_shape() {
        let org = generate(500, 7, Utc::now());
        assert_eq!(org.users.len(), 500);
        let autoproc: Vec<_> = org
            .users
            .iter()
            .filter(|r| {
                r[idx::EMAIL]
                    .as_str()
                    .is_some_and(|e| e.starts_with("autoproc"))
            })
            .collect();
        assert_eq!(autoproc.len(), 1);
        let inactive = org
            .users
            .iter()
            .filter(|r| r[idx::IS_ACTIVE] == Val::Bool(false))
            .count();
        assert!((5..=60).contains(&inactive), "{inactive} inactive");
        let mut names: Vec<_> = org
            .users
            .iter()
            .filter_map(|r| r[idx::USERNAME].as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 500);
        assert!(org.users.iter().all(|r| {
            r[idx::ALIAS]
                .as_str()
                .is_some_and(|a| a.len() <= 8 && !a.is_empty())
        }));
        // Deterministic from the seed.
        let again = generate(500, 7, Utc::now());
        assert_eq!(again.users[42][idx::USERNAME], org.users[42][idx::USERNAME]);
    }
}
